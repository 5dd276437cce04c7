"""Where a relative path written in a recipe is looked for: the recipe's folder, then the
working directory. Data files, reward function files and benchmark folders all follow it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
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


def check_output_dir(out: Path) -> None:
    """A run folder must be a folder, or a place where one can be made, and writable (checked before
    any work, not at the first write). Nothing is created: ``run_lock.own_output_dir`` does that."""
    from rlsp.errors import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError(f"run.output_dir: {out} is a file, not a folder; choose a folder for the run's outputs.")
    existing = next(p for p in [out, *out.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"run.output_dir: {out} lies under {existing}, which is a file; choose a folder for the "
                          f"run's outputs.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"run.output_dir: cannot write to {existing} (read-only or no permission); choose a "
                          f"folder this user can write to.")


def claim_output_dir(out: Path, outputs: Sequence[str], overwrite: bool, command: str) -> None:
    """Refuse an output folder that already holds ``outputs`` of an earlier run (nothing is
    overwritten by accident); with ``overwrite`` remove those outputs first."""
    from rlsp.errors import ConfigError

    check_output_dir(out)
    found = [name for name in outputs if (out / name).exists()]
    if not found:
        return
    if not overwrite:
        raise ConfigError(
            f"run.output_dir {out} already holds the output of an earlier rlsp {command} ({', '.join(found)}); "
            f"nothing was overwritten. Choose another run.output_dir, or pass --overwrite to replace it."
        )
    from rlsp.launch_setup import launched_rank

    if launched_rank() != 0:
        return  # under a launcher the main process removes them; two removing one tree would collide
    for name in found:
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
