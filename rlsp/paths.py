"""Where a relative path written in a recipe is looked for: the recipe's folder, then the
working directory. Data files, reward function files and benchmark folders all follow it."""

from __future__ import annotations

from pathlib import Path


def candidate_paths(path_text: str, base_dir: Path | None) -> list[Path]:
    """The places ``path_text`` may be, in lookup order (one for an absolute path)."""
    path = Path(path_text).expanduser()
    if path.is_absolute():
        return [path]
    places = [Path(base_dir) / path] if base_dir is not None else []
    return list(dict.fromkeys(places + [Path.cwd() / path]))


def find_file(path_text: str, base_dir: Path | None) -> Path | None:
    """The first existing file among ``candidate_paths``, or None."""
    return next((c for c in candidate_paths(path_text, base_dir) if c.is_file()), None)


def describe_candidates(path_text: str, base_dir: Path | None) -> str:
    """``'a' and 'b'``: where ``path_text`` was looked for, for an error message."""
    return " and ".join(repr(str(c)) for c in candidate_paths(path_text, base_dir))


def names_local_path(text: str, base_dir: Path | None = None) -> bool:
    """Whether ``text`` is meant as a local path rather than a hub id ('org/name'): it starts
    like a path, or its first folder exists here (``runs/sft`` beside a ``runs/`` folder)."""
    if text.startswith((".", "/", "~")):
        return True
    first = text.split("/", 1)[0]
    return "/" in text and any(place.is_dir() for place in candidate_paths(first, base_dir))
