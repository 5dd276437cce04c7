"""From ``sft.source`` to the selected, length-checked examples a warm-start trains on.

Order matters for users: rows are read and their fields checked before any tokenizer or model is
loaded, and every example is measured in tokens exactly as it will be trained (chat template
applied) so that examples over ``sft.max_length`` are dropped, and counted, rather than truncated.
Prompts are built by ``rlsp.data.prompts.chat_messages`` with the recipe's ``data`` section, the
same function evaluation and RL use, so a warm-started model sees the prompts it will be asked.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Recipe
from ..data import Example
from ..data.prompts import chat_messages
from ..data.sources import is_file_source
from ..errors import DataError
from .example import SftExample
from .selection import length_stats, select_examples

ARITH_TRACES = "builtin:arith_traces"


@dataclass(frozen=True)
class SftData:
    examples: list[SftExample]  # the selected examples, tokens measured
    source: str  # file path, hub name or built-in name
    rows: int  # usable rows read (after sft.where)
    too_long: int  # rows dropped for being longer than sft.max_length tokens
    pool_tokens: dict  # length_stats over every usable row, too-long ones included
    selected_tokens: dict  # length_stats over the selected examples

    def summary(self, recipe: Recipe) -> dict[str, Any]:
        """What gets written to sft_data_stats.json."""
        cfg = recipe.sft
        return {
            "source": self.source,
            "rows": self.rows,
            "dropped_over_max_length": self.too_long,
            "max_length": cfg.max_length,
            "select": cfg.select,
            "n": len(self.examples),
            "tokens_all_rows": self.pool_tokens,
            "tokens_selected": self.selected_tokens,
            "selected_ids": [e.id for e in self.examples],
        }


def read_sft_examples(
    recipe: Recipe, base_dir: Path | None = None
) -> tuple[list[SftExample], str]:
    """Every usable row of ``sft.source`` as an example (tokens not yet measured), and where it came from."""
    cfg = recipe.sft
    if cfg.source == ARITH_TRACES:
        from .arith_traces import arith_traces

        traces = arith_traces(
            cfg.arith.size, recipe.data.arith.levels, recipe.run.seed, cfg.arith.error_share
        )
        return traces, cfg.source
    if cfg.source.startswith("builtin:"):
        raise DataError(
            f"sft.source: unknown built-in dataset {cfg.source!r}; the built-in one is {ARITH_TRACES!r}."
        )
    rows, where = _read_rows(cfg.source, cfg.split, base_dir)
    rows = _filter_rows(rows, cfg.where, where)
    return [_to_example(number, row, recipe, where) for number, row in rows], where


def prepare_sft_data(recipe: Recipe, tokenizer, base_dir: Path | None = None) -> SftData:
    """Read, measure, drop the too long, select: everything but the training itself."""
    cfg = recipe.sft
    examples, where = read_sft_examples(recipe, base_dir)
    measured = [dataclasses.replace(e, tokens=count_tokens(tokenizer, e, recipe)) for e in examples]
    fitting = [e for e in measured if e.tokens <= cfg.max_length]
    too_long = len(measured) - len(fitting)
    if cfg.select == "ids":
        wanted = {str(i) for i in cfg.ids}
        over = [
            f"{e.id} ({e.tokens} tokens)"
            for e in measured
            if e.id in wanted and e.tokens > cfg.max_length
        ]
        if over:
            raise DataError(
                f"sft.ids: {', '.join(over[:5])} longer than sft.max_length={cfg.max_length}; raise "
                f"sft.max_length or leave them out."
            )
    if cfg.n is not None and cfg.select != "ids" and cfg.n > len(fitting):
        raise DataError(
            f"sft.n is {cfg.n} but {where} has only {len(fitting)} usable examples ({len(measured)} rows, "
            f"{too_long} longer than sft.max_length={cfg.max_length} tokens). Lower sft.n or raise sft.max_length."
        )
    if not fitting:
        raise DataError(
            f"{where}: every example is longer than sft.max_length={cfg.max_length} tokens; raise it."
        )
    selected = select_examples(fitting, cfg.select, cfg.n, cfg.ids, recipe.run.seed)
    return SftData(
        examples=selected,
        source=where,
        rows=len(measured),
        too_long=too_long,
        pool_tokens=length_stats([e.tokens for e in measured]),
        selected_tokens=length_stats([e.tokens for e in selected]),
    )


def conversation(example: SftExample, recipe: Recipe) -> dict[str, list[dict]]:
    """TRL's conversational prompt-completion row: the loss falls on the completion only."""
    return {
        "prompt": chat_messages(Example(example.prompt, ""), recipe.data),
        "completion": [{"role": "assistant", "content": example.response}],
    }


def count_tokens(tokenizer, example: SftExample, recipe: Recipe) -> int:
    """Tokens of prompt + response as trained: the whole conversation through the chat template."""
    row = conversation(example, recipe)
    encoded = tokenizer.apply_chat_template(
        row["prompt"] + row["completion"], tokenize=True, return_dict=True
    )
    return len(encoded["input_ids"])


def _read_rows(
    source: str, split: str, base_dir: Path | None
) -> tuple[list[tuple[int, dict]], str]:
    """Rows as (row number, mapping) from a local file or the hub, and where they came from.

    Row numbers are line numbers in a .jsonl file, positions (from 1) otherwise.
    """
    import datasets

    if not is_file_source(source):
        try:
            table = datasets.load_dataset(source, split=split)
        except Exception as e:  # noqa: BLE001 -- the hub client raises many types; all mean "cannot get it"
            raise DataError(
                f"sft.source: could not load dataset {source!r} split {split!r} from the hub: {e}"
            ) from None
        return [(i + 1, row) for i, row in enumerate(table)], source
    candidates = [Path(source).expanduser()]
    if base_dir is not None and not Path(source).is_absolute():
        candidates.insert(0, base_dir / source)
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        looked = " and ".join(repr(str(c)) for c in candidates)
        raise DataError(
            f"sft.source: file {source!r} not found (looked at {looked}). Fix the path in the recipe."
        )
    if path.suffix == ".parquet":
        return [
            (i + 1, row) for i, row in enumerate(datasets.Dataset.from_parquet(str(path)))
        ], str(path)
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(
                f"{path}: not valid JSON (line {e.lineno}: {e.msg}); a .json file holds a list of objects."
            ) from None
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise DataError(
                f"{path}: a .json dataset must be a list of objects; use .jsonl for one object per line."
            )
        return list(enumerate(data, start=1)), str(path)
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{path}: line {number} is not valid JSON ({e.msg}); fix or remove the line."
            ) from None
        if not isinstance(row, dict):
            raise DataError(
                f"{path}: line {number} is not a JSON object; each line must hold one object."
            )
        rows.append((number, row))
    return rows, str(path)


def _filter_rows(
    rows: list[tuple[int, dict]], where_cfg: dict, where: str
) -> list[tuple[int, dict]]:
    kept = [(n, row) for n, row in rows if all(_same(row.get(k), v) for k, v in where_cfg.items())]
    if rows and not kept:
        seen = {k: sorted({str(row.get(k)) for _, row in rows})[:8] for k in where_cfg}
        raise DataError(f"{where}: no row matches sft.where={where_cfg}; values present: {seen}.")
    return kept


def _same(value: Any, wanted: Any) -> bool:
    return value == wanted or str(value) == str(wanted)


def _to_example(number: int, row: dict, recipe: Recipe, where: str) -> SftExample:
    cfg = recipe.sft
    prompt = _text(row, cfg.prompt_field, number, where, "prompt_field")
    if cfg.response_template is not None:
        try:
            response = cfg.response_template.format_map(row)
        except KeyError as e:
            raise DataError(
                f"{where}: row {number} has no field {e.args[0]!r} named in sft.response_template; its "
                f"fields are {sorted(row)}."
            ) from None
    else:
        response = _text(row, cfg.response_field, number, where, "response_field")
    example_id = (
        _text(row, cfg.id_field, number, where, "id_field") if cfg.id_field else str(number)
    )
    difficulty = None
    if cfg.difficulty_field:
        raw = _text(row, cfg.difficulty_field, number, where, "difficulty_field")
        try:
            difficulty = float(raw)
        except ValueError:
            raise DataError(
                f"{where}: row {number}: sft.difficulty_field {cfg.difficulty_field!r} is {raw!r}, not a "
                f"number; 'hardest' needs a numeric column (higher is harder)."
            ) from None
    return SftExample(example_id, prompt, response, difficulty)


def _text(row: dict, field: str, number: int, where: str, option: str) -> str:
    value = row.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(
            f"{where}: row {number} has no value for field {field!r} (sft.{option}); its fields are "
            f"{sorted(row)}. Set sft.{option} to the column that holds it."
        )
    return str(value)
