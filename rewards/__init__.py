"""Reward functions shipped with rlsp, importable as ``rlsp_rewards``."""
