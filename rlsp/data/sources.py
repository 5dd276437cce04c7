"""Prompt datasets: the built-in arithmetic task, local files or datasets-hub names.

Each row becomes an ``Example``: the problem text, the final reference answer and the row's other
columns (handed to reward functions as keyword arguments). Rows are checked while loading, before
any model is loaded, so a bad file fails in seconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlsp.config.schema import DataConfig
from rlsp.data.references import reference_answer
from rlsp.data.rows import check_data_source, read_rows
from rlsp.errors import ConfigError, DataError

BUILTIN_PREFIX = "builtin:"


@dataclass(frozen=True)
class Example:
    prompt: str  # the problem text, before the prompt template
    reference: str  # the final answer a verifier compares against
    columns: dict[str, Any] = field(default_factory=dict)  # every other column of the row


@dataclass(frozen=True)
class LoadedData:
    examples: list[Example]
    skipped: int  # rows dropped under on_bad_row='skip' (malformed or missing a field)
    source: str


def check_source(cfg: DataConfig, base_dir: Path | None, section: str = "data") -> None:
    """Cheap checks that need no loading: the file exists, the built-in task name is known.
    ``section`` names the recipe section in messages (``data`` or ``heldout``)."""
    if cfg.source.startswith(BUILTIN_PREFIX):
        if cfg.source != "builtin:arith":
            raise DataError(
                f"{section}.source: unknown built-in dataset {cfg.source!r}; the built-in task is 'builtin:arith'."
            )
        if cfg.split not in ("train", "heldout"):
            raise ConfigError(
                f"{section}.split: the arithmetic task has splits 'train' and 'heldout', not {cfg.split!r}"
                + (" (the default, meant for files and hub datasets)" if cfg.split == "test" else "")
                + f"; set {section}.split: heldout to evaluate, or train for rlsp train."
            )
    else:
        check_data_source(cfg.source, base_dir, f"{section}.source")


def load_examples(cfg: DataConfig, seed: int, base_dir: Path | None = None, section: str = "data") -> LoadedData:
    check_source(cfg, base_dir, section)
    if cfg.source == "builtin:arith":
        return LoadedData(_arith_examples(cfg, seed), 0, cfg.source)
    read = read_rows(cfg.source, split=cfg.split, subset=cfg.subset, on_bad_row=cfg.on_bad_row, base_dir=base_dir,
                     field=f"{section}.source")
    rows, malformed, where = read.rows, read.malformed, read.where
    examples, missing = _map_rows(rows, cfg, where)
    if cfg.shuffle:
        random.Random(seed).shuffle(examples)
    if cfg.limit is not None:
        examples = examples[: cfg.limit]
    if not examples:
        raise DataError(f"{where}: no usable rows (skipped {malformed + missing}). "
                        "Check data.prompt_field and data.reference_field.")
    return LoadedData(examples, malformed + missing, where)


def load_or_check_examples(cfg: DataConfig, seed: int, base_dir: Path | None, section: str,
                           fetch: bool) -> LoadedData | None:
    """``load_examples``, except that with ``fetch`` False (``rlsp validate``) a hub dataset is only
    checked by name and not downloaded (None); built-in and local ones are read row by row."""
    from rlsp.data.rows import is_file_source

    if fetch or cfg.source.startswith(BUILTIN_PREFIX) or is_file_source(cfg.source):
        return load_examples(cfg, seed, base_dir, section)
    check_source(cfg, base_dir, section)
    return None


def _arith_examples(cfg: DataConfig, seed: int) -> list[Example]:
    from rlsp.data.arithmetic import arithmetic_problems

    size = cfg.arith.heldout_size if cfg.split == "heldout" else cfg.arith.train_size
    problems = arithmetic_problems(cfg.split, size, cfg.arith.levels, seed)
    examples = [Example(p.question, p.answer, {"level": p.level}) for p in problems]
    return examples[: cfg.limit] if cfg.limit is not None else examples


def _map_rows(rows: list[tuple[int, dict]], cfg: DataConfig, where: str) -> tuple[list[Example], int]:
    examples, missing = [], 0
    for number, row in rows:
        problem = _field(row, cfg.prompt_field)
        raw_reference = _field(row, cfg.reference_field)
        reference = reference_answer(raw_reference, cfg.reference_format) if raw_reference is not None else None
        if problem is None or reference is None:
            if cfg.on_bad_row == "skip":
                missing += 1
                continue
            if problem is None:
                what = f"has no value for field {cfg.prompt_field!r}"
            elif raw_reference is None:
                what = f"has no value for field {cfg.reference_field!r}"
            else:
                what = (f"has no final answer in field {cfg.reference_field!r} "
                        f"(data.reference_format={cfg.reference_format!r})")
            raise DataError(
                f"{where}: row {number} {what}; its fields are {sorted(row)}. Set "
                f"data.prompt_field / data.reference_field / data.reference_format to match the "
                f"file, or data.on_bad_row=skip to drop such rows."
            )
        columns = {k: v for k, v in row.items() if k not in (cfg.prompt_field, cfg.reference_field)}
        examples.append(Example(problem, reference, columns))
    return examples, missing


def _field(row: dict, name: str) -> str | None:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value)
