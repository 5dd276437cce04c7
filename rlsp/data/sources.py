"""Prompt datasets: the built-in arithmetic task, local files or datasets-hub names.

Each row becomes an ``Example``: the problem text, the final reference answer and the row's other
columns (handed to reward functions as keyword arguments). Rows are checked while loading, before
any model is loaded, so a bad file fails in seconds.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.schema import DataConfig
from ..errors import DataError
from .references import reference_answer

FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
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


def resolve_data_file(source: str, base_dir: Path | None) -> Path:
    """Find a local data file: relative to the recipe's folder first, then the working directory."""
    candidates = [Path(source).expanduser()]
    if base_dir is not None and not Path(source).is_absolute():
        candidates.insert(0, base_dir / source)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = " and ".join(repr(str(c)) for c in candidates)
    raise DataError(f"data.source: dataset file {source!r} not found (looked at {looked}). Fix the path in the recipe.")


def is_file_source(source: str) -> bool:
    return source.endswith(FILE_SUFFIXES)


def check_source(cfg: DataConfig, base_dir: Path | None) -> None:
    """Cheap checks that need no loading: the file exists, the built-in task name is known."""
    if cfg.source.startswith(BUILTIN_PREFIX):
        if cfg.source != "builtin:arith":
            raise DataError(f"data.source: unknown built-in dataset {cfg.source!r}; the built-in task is 'builtin:arith'.")
    elif is_file_source(cfg.source):
        resolve_data_file(cfg.source, base_dir)


def load_examples(cfg: DataConfig, seed: int, base_dir: Path | None = None) -> LoadedData:
    check_source(cfg, base_dir)
    if cfg.source == "builtin:arith":
        return LoadedData(_arith_examples(cfg, seed), 0, cfg.source)
    if is_file_source(cfg.source):
        path = resolve_data_file(cfg.source, base_dir)
        rows, malformed = _read_file(path, cfg.on_bad_row)
        where = str(path)
    else:
        rows, malformed, where = _read_hub(cfg.source, cfg.subset, cfg.split), 0, cfg.source
    examples, missing = _map_rows(rows, cfg, where)
    if cfg.shuffle:
        random.Random(seed).shuffle(examples)
    if cfg.limit is not None:
        examples = examples[: cfg.limit]
    if not examples:
        raise DataError(f"{where}: no usable rows (skipped {malformed + missing}). Check data.prompt_field and data.reference_field.")
    return LoadedData(examples, malformed + missing, where)


def _arith_examples(cfg: DataConfig, seed: int) -> list[Example]:
    from .arithmetic import arithmetic_problems

    size = cfg.arith.heldout_size if cfg.split == "heldout" else cfg.arith.train_size
    problems = arithmetic_problems(cfg.split, size, cfg.arith.levels, seed)
    examples = [Example(p.question, p.answer, {"level": p.level}) for p in problems]
    return examples[: cfg.limit] if cfg.limit is not None else examples


def _read_file(path: Path, on_bad_row: str) -> tuple[list[tuple[int, dict]], int]:
    """Rows as (line or row number, mapping); malformed JSON lines are errors or skipped."""
    if path.suffix == ".parquet":
        import datasets

        table = datasets.Dataset.from_parquet(str(path))
        return [(i + 1, row) for i, row in enumerate(table)], 0
    text = path.read_text()
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON (line {e.lineno}: {e.msg}). A .json file must hold a list of objects.") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: a .json dataset must be a list of objects; use .jsonl for one object per line.")
        return [(i + 1, row) for i, row in enumerate(data)], 0
    rows, malformed = [], 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise TypeError("not a JSON object")
        except (ValueError, TypeError) as e:
            if on_bad_row == "error":
                raise DataError(f"{path}: line {number} is not a JSON object ({e}). Fix the line, or set data.on_bad_row=skip.") from None
            malformed += 1
            continue
        rows.append((number, row))
    return rows, malformed


def _read_hub(name: str, subset: str | None, split: str) -> list[tuple[int, dict]]:
    import datasets

    try:
        table = datasets.load_dataset(name, subset, split=split)
    except Exception as e:  # noqa: BLE001 -- the hub client raises many types; all mean "cannot get it"
        raise DataError(f"data.source: could not load dataset {name!r} split {split!r} from the hub: {e}") from None
    return [(i + 1, row) for i, row in enumerate(table)]


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
                what = f"has no final answer in field {cfg.reference_field!r} (data.reference_format={cfg.reference_format!r})"
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
