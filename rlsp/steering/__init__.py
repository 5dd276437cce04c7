"""Steering vectors: per-layer directions in the residual stream, extracted from contrastive
prompts (``rlsp steer extract``), measured on texts (``rlsp steer project``) and added during
training by the preventative-steering hook (``rlsp.hooks.steering``)."""
