"""Marker phrases for the reasoning behaviours the detector labels, and how to replace them.

Each behaviour is a list of phrases, matched case-insensitively where they stand as whole words
("wait" matches "Wait," but not "awaited"). The defaults follow the behaviours the RLSP paper saw
emerge (backtracking, verification, trying alternatives) plus hedging (uncertainty); the
phrases are those R1-style traces use. A recipe (``train.behaviour_markers``) or ``rlsp inspect
--markers FILE`` replaces the whole mapping; a file is YAML or JSON, ``behaviour: [phrase, ...]``.
"""

from __future__ import annotations

import re
from pathlib import Path

from rlsp.errors import ConfigError

DEFAULT_MARKERS: dict[str, tuple[str, ...]] = {
    "backtracking": (
        "wait", "but wait", "hold on", "actually", "no,", "no.", "oops", "hmm",
        "that's wrong", "that is wrong", "that's not right", "that is not right", "that can't be right",
        "that doesn't make sense", "i made a mistake", "i made an error", "my mistake", "scratch that",
        "let me re-check", "let me recheck", "let me reconsider", "let me re-examine", "let me go back",
        "let me start over", "on second thought",
    ),
    "verification": (
        "let me verify", "let me check", "let's check", "let's verify", "double-check", "double check",
        "to verify", "to confirm", "verify", "verifying", "sanity check", "plug it back", "plugging",
        "substituting back", "check:", "checks out", "which matches", "that matches", "is consistent",
        "confirms",
    ),
    "exploration": (
        "alternatively", "another approach", "another way", "a different approach", "different method",
        "let me try", "let's try", "what if", "instead,", "or maybe", "one approach", "try another",
        "let me think of another", "consider another",
    ),
    "uncertainty": (
        "i'm not sure", "i am not sure", "not sure", "maybe", "perhaps", "i think", "i guess", "might be",
        "probably", "possibly", "unclear", "i'm confused", "confusing", "seems like", "not certain",
    ),
}

BEHAVIOURS = tuple(DEFAULT_MARKERS)


def compile_markers(markers: dict[str, tuple[str, ...] | list[str]]) -> dict[str, re.Pattern]:
    """One alternation per behaviour, longest phrase first so a phrase wins over one it contains."""
    return {behaviour: _alternation(phrases) for behaviour, phrases in markers.items()}


def check_markers(markers, field_name: str) -> dict[str, tuple[str, ...]]:
    """A mapping of behaviour name to a non-empty list of non-empty phrases, or a ConfigError naming ``field_name``."""
    if not isinstance(markers, dict) or not markers:
        raise ConfigError(f"{field_name}: give a mapping of behaviour name to a list of phrases, "
                          f"e.g. {{backtracking: [wait, actually]}}.")
    checked = {}
    for behaviour, phrases in markers.items():
        if not isinstance(behaviour, str) or not re.fullmatch(r"[A-Za-z][\w-]*", behaviour):
            raise ConfigError(f"{field_name}: behaviour name {behaviour!r} should be a word (letters, digits, _ or -).")
        if isinstance(phrases, str) or not isinstance(phrases, (list, tuple)) or not phrases:
            raise ConfigError(f"{field_name}.{behaviour}: give a non-empty list of phrases; got {phrases!r}.")
        bad = [p for p in phrases if not isinstance(p, str) or not p.strip()]
        if bad:
            raise ConfigError(f"{field_name}.{behaviour}: phrases must be non-empty strings; got {bad!r}.")
        checked[behaviour] = tuple(p.strip().lower() for p in phrases)
    return checked


def read_markers(path: str | Path) -> dict[str, tuple[str, ...]]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--markers: {path} not found; give a YAML or JSON file of behaviour: [phrases].")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML
    except UnicodeDecodeError as e:
        raise ConfigError(f"--markers: {path} is not a text file (byte {e.start} is not UTF-8); give a YAML or "
                          f"JSON file of behaviour: [phrases].") from None
    except OSError as e:
        raise ConfigError(f"--markers: {path} cannot be read ({e.strerror}).") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"--markers: {path} is not valid YAML or JSON{where} "
                          f"({getattr(e, 'problem', None) or 'syntax error'}).") from None
    return check_markers(loaded, f"--markers {path}")


def _alternation(phrases) -> re.Pattern:
    parts = []
    for phrase in sorted({p.lower() for p in phrases}, key=len, reverse=True):
        body = r"\s+".join(re.escape(word) for word in phrase.split())
        start = r"(?<!\w)" if phrase[0].isalnum() else ""
        end = r"(?!\w)" if phrase[-1].isalnum() else ""
        parts.append(start + body + end)
    return re.compile("|".join(parts), flags=re.IGNORECASE)
