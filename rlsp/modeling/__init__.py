"""The networks: finding and loading causal LMs, the LoRA builder, policy/reference/critic."""
