"""Loading user code named in a recipe: ``package.module:attribute`` or ``path/to/file.py:attribute``.

Reward functions, verifiers and trainer hooks are all found this way. A relative file path is
looked up in the recipe's folder, then the working directory; each file is imported once, so two
recipe entries naming the same file share its module (and its registrations).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from rlsp.errors import RlspError, did_you_mean
from rlsp.paths import describe_candidates, find_file


def is_plugin_ref(ref: str) -> bool:
    """``module:attr`` or ``file.py:attr`` (a bare name is a registry lookup instead)."""
    return ":" in ref


def load_attribute(ref: str, base_dir: Path | None, kind: str, noun: str, error: type[RlspError]) -> Any:
    """The object ``ref`` names. ``kind`` ("reward function", "hook") and ``noun`` ("function",
    "class") word the messages; ``error`` is the error type raised, saying how to fix it."""
    target, _, attr = ref.strip().rpartition(":")
    if not target or not attr:
        raise error(f"{kind} '{ref}' is malformed; use 'package.module:{noun}' or 'path/to/file.py:{noun}'")
    if _names_file(target):
        module, where = _load_file(target, base_dir, kind, error)
    else:
        module, where = _import_module(target, kind, f"path/to/file.py:{noun}", error), f"module '{target}'"
    if not hasattr(module, attr):
        defined = sorted(
            n for n, v in vars(module).items()
            if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == module.__name__
        )
        raise error(
            f"{where} has no {noun} '{attr}'.{did_you_mean(attr, defined)} "
            f"It defines: {', '.join(defined) or 'none'}."
        )
    return getattr(module, attr)


def _load_file(path_text: str, base_dir: Path | None, kind: str, error: type[RlspError]) -> tuple[Any, str]:
    found = find_file(path_text, base_dir)
    if found is None:
        raise error(
            f"{kind} file '{path_text}' not found; looked for {describe_candidates(path_text, base_dir)}. "
            "Relative paths are resolved against the recipe's folder, then the working directory."
        )
    found = found.resolve()
    digest = hashlib.sha1(str(found).encode()).hexdigest()[:10]
    module_name = f"_rlsp_user_{found.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name], f"file {found}"
    spec = importlib.util.spec_from_file_location(module_name, found)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # before exec, so dataclasses and pickling can find it
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[module_name]
        raise error(f"importing {kind} file {found} failed: {type(e).__name__}: {e}") from e
    return module, f"file {found}"


def _names_file(target: str) -> bool:
    """``path/to/file.py`` rather than ``package.module``."""
    return target.endswith(".py") or "/" in target or "\\" in target


def _import_module(name: str, kind: str, file_form: str, error: type[RlspError]) -> Any:
    """Import ``name``; a missing package is named with the way to give a file instead (``file_form``)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and (name == e.name or name.startswith(e.name + ".")):
            raise error(
                f"no module named '{e.name}' (looking for {kind} module '{name}'): install its package "
                f"in this environment, or refer to a file as '{file_form}'"
            ) from e
        raise error(f"importing module '{name}' failed: {e}") from e
    except Exception as e:
        raise error(f"importing module '{name}' failed: {type(e).__name__}: {e}") from e


def import_plugin_module(ref: str, base_dir: Path | None, kind: str, error: type[RlspError]) -> Any:
    """Import the module (``package.module``) or file (``path/to/file.py``) ``ref`` names, for what
    it registers; a file is imported once however many recipes name it."""
    if _names_file(ref):
        return _load_file(ref, base_dir, kind, error)[0]
    return _import_module(ref, kind, "path/to/file.py", error)
