"""User-facing errors.

An ``RlspError`` is a problem with the user's input (recipe, data file, model name, reward
function). The CLI prints its message alone, without a traceback, and exits with status 2.
Messages say what is wrong, where (file, field, sample) and how to fix it.
"""


class RlspError(Exception):
    """A problem the user can fix; printed without a traceback."""


class ConfigError(RlspError):
    """A recipe file or override is missing, malformed or has a bad value."""


class DataError(RlspError):
    """A dataset file or its rows do not match what the recipe asks for."""


class ModelError(RlspError):
    """A model name or path cannot be resolved or loaded."""


class RewardError(RlspError):
    """A reward function or verifier failed, or returned something unusable."""
