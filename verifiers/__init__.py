"""Outcome verifiers shipped with rlsp, importable as ``rlsp_verifiers``.

Each verifier has the reward-function shape ``fn(prompts, completions, references, **columns)``
and returns one ``Verdict`` (or None: not applicable) per sample.
"""

from .answer_extraction import ANSWER_FORMATS, extract_answer, last_boxed, last_match, last_number
from .math_verifier import math, verify_math
from .multiple_choice import extract_choice, multiple_choice
from .numeric import numeric, to_number
from .string_match import normalize, string_match
from .time_limit import Outcome, call_with_time_limit
from .verdict import Verdict

__all__ = [
    "ANSWER_FORMATS",
    "Outcome",
    "Verdict",
    "call_with_time_limit",
    "extract_answer",
    "extract_choice",
    "last_boxed",
    "last_match",
    "last_number",
    "math",
    "multiple_choice",
    "normalize",
    "numeric",
    "string_match",
    "to_number",
    "verify_math",
]
