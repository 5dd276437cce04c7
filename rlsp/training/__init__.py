"""RLSP PPO training: the loop, its phases, checkpoints and logs."""
