"""Scoring samples: the reward function registry and plug-in loader, the safe caller, the two
reward channels, and the outcome verifier used for accuracy.

A user's reward module registers its function with::

    from rlsp.scoring import register_reward_function
"""

from rlsp.scoring.registry import register_reward_function, registered_names
from rlsp.scoring.reward_function import RewardFunction, RewardResult

__all__ = ["RewardFunction", "RewardResult", "register_reward_function", "registered_names"]
