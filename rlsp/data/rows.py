"""Reading the rows of a dataset: a local .jsonl/.json/.parquet file or a datasets-hub name.

The one reader behind RL prompts, evaluation and SFT (``data.source`` and ``sft.source``): a row
is ``(number, mapping)``, the number being the line of a .jsonl file and the position (from 1)
otherwise, so an error can point at it. Malformed lines stop the read or, with
``on_bad_row='skip'``, are counted and dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rlsp.errors import DataError
from rlsp.paths import describe_candidates, find_file, names_local_path

FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass(frozen=True)
class Rows:
    rows: list[tuple[int, dict]]  # (line or row number, the row)
    malformed: int  # lines dropped under on_bad_row='skip' (not JSON objects)
    where: str  # the file path or hub name, for messages and summaries


def is_file_source(source: str) -> bool:
    return source.endswith(FILE_SUFFIXES)


def check_not_a_mistyped_file(source: str, base_dir: Path | None, field: str) -> None:
    """Refuse a source that names a local file of another type, or a path under a local folder,
    before the hub client spends a minute retrying it as a dataset name."""
    suffix = Path(source).suffix
    if suffix and suffix not in FILE_SUFFIXES and suffix[1:].isalpha() and len(suffix) <= 9:
        raise DataError(
            f"{field}: {source!r} has the extension {suffix!r}; rlsp reads {', '.join(FILE_SUFFIXES)} files "
            f"(a hub dataset is named 'organisation/name'). Fix the file name."
        )
    if names_local_path(source, base_dir):
        raise DataError(
            f"{field}: dataset file {source!r} not found (looked at {describe_candidates(source, base_dir)}); "
            f"it names a local folder, so it is not read as a hub dataset. Fix the path."
        )


def check_data_source(source: str, base_dir: Path | None, field: str) -> None:
    """What needs no reading: a local file exists; any other source is not a mistyped local path."""
    if is_file_source(source):
        resolve_data_file(source, base_dir, field)
    else:
        check_not_a_mistyped_file(source, base_dir, field)


def resolve_data_file(source: str, base_dir: Path | None, field: str = "data.source") -> Path:
    """A local data file: relative to the recipe's folder first, then the working directory."""
    found = find_file(source, base_dir)
    if found is None:
        raise DataError(
            f"{field}: dataset file {source!r} not found (looked at {describe_candidates(source, base_dir)}). "
            f"Fix the path in the recipe."
        )
    return found


def read_rows(
    source: str,
    *,
    split: str,
    subset: str | None = None,
    on_bad_row: str = "error",
    base_dir: Path | None = None,
    field: str = "data.source",
) -> Rows:
    """Every row of ``source``; ``field`` names the recipe field in messages (``sft.source``)."""
    check_data_source(source, base_dir, field)
    if not is_file_source(source):
        return Rows(_read_hub(source, subset, split, field), 0, source)
    path = resolve_data_file(source, base_dir, field)
    if path.suffix == ".parquet":
        return Rows(read_parquet(path), 0, str(path))
    if path.suffix == ".json":
        return Rows(_read_json(path), 0, str(path))
    rows, malformed = _read_jsonl(path, on_bad_row, field)
    return Rows(rows, malformed, str(path))


def read_parquet(path: Path) -> list[tuple[int, dict]]:
    import pyarrow.parquet as pq  # directly: datasets' reader also prints pyarrow's error to the log

    try:
        table = pq.read_table(path).to_pylist()
    except Exception as e:  # noqa: BLE001 -- pyarrow raises several types for a file that is not parquet
        raise DataError(f"{path}: not a readable parquet file ({type(e).__name__}: {e}).") from None
    return [(i + 1, row) for i, row in enumerate(table)]


def read_text(path: Path) -> str:
    """A data or log file's text, or a DataError saying why it cannot be read (binary, another
    encoding, no permission): the one place the readers of rows and logs open a text file."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line} is not UTF-8 text (byte {e.start}); is it a binary file? Give a "
                        f"{path.suffix or 'text'} file saved as UTF-8.") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror}); check the path and its permissions.") from None


def _read_json(path: Path) -> list[tuple[int, dict]]:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}: not valid JSON (line {e.lineno}: {e.msg}). A .json file must hold a list of objects."
        ) from None
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise DataError(f"{path}: a .json dataset must be a list of objects; use .jsonl for one object per line.")
    return list(enumerate(data, start=1))


def _read_jsonl(path: Path, on_bad_row: str, field: str) -> tuple[list[tuple[int, dict]], int]:
    rows, malformed = [], 0
    option = field.rsplit(".", 1)[0] + ".on_bad_row"
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise TypeError("not a JSON object")
        except (ValueError, TypeError) as e:
            if on_bad_row == "error":
                raise DataError(
                    f"{path}: line {number} is not a JSON object ({e}). Fix the line, or set {option}=skip."
                ) from None
            malformed += 1
            continue
        rows.append((number, row))
    return rows, malformed


def _read_hub(name: str, subset: str | None, split: str, field: str) -> list[tuple[int, dict]]:
    import datasets

    try:
        table = datasets.load_dataset(name, subset, split=split)
    except Exception as e:  # noqa: BLE001 -- the hub client raises many types; all mean "cannot get it"
        raise DataError(f"{field}: could not load dataset {name!r} split {split!r} from the hub: {e}") from None
    return [(i + 1, row) for i, row in enumerate(table)]
