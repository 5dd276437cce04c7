"""rlsp: RL post-training for reasoning (RLSP: PPO with separate exploration and verifier rewards)."""

__version__ = "0.1.0"
