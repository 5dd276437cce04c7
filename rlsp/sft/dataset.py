"""From ``sft.source`` to the selected, length-checked examples a warm-start trains on.

Order matters for users: rows are read and their fields checked before any tokenizer or model is
loaded, and every example is measured in tokens exactly as it will be trained (chat template
applied) so that examples over ``sft.max_length`` are dropped, and counted, rather than truncated.
Prompts are built by ``rlsp.data.prompts.chat_messages`` with the recipe's ``data`` section, the
same function evaluation and RL use, so a warm-started model sees the prompts it will be asked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlsp.config import Recipe
from rlsp.data import Example
from rlsp.data.prompts import chat_messages
from rlsp.data.rows import check_data_source, is_file_source, read_rows
from rlsp.errors import DataError
from rlsp.sft.example import SftExample
from rlsp.sft.selection import length_stats, select_examples

ARITH_TRACES = "builtin:arith_traces"
MessagesHook = Callable[[list[dict]], list[dict]]


@dataclass(frozen=True)
class SftData:
    examples: list[SftExample]  # the selected examples, tokens measured
    source: str  # file path, hub name or built-in name
    rows: int  # usable rows read (after sft.where)
    skipped: int  # rows dropped under sft.on_bad_row=skip (not JSON objects, or a mapped field empty)
    too_long: int  # rows dropped for being longer than sft.max_length tokens
    pool_tokens: dict  # length_stats over every usable row, too-long ones included
    selected_tokens: dict  # length_stats over the selected examples

    def summary(self, recipe: Recipe) -> dict[str, Any]:
        """What gets written to sft_data_stats.json."""
        cfg = recipe.sft
        return {
            "source": self.source,
            "rows": self.rows,
            "skipped_bad_rows": self.skipped,
            "dropped_over_max_length": self.too_long,
            "max_length": cfg.max_length,
            "select": cfg.select,
            "n": len(self.examples),
            "tokens_all_rows": self.pool_tokens,
            "tokens_selected": self.selected_tokens,
            "selected_ids": [e.id for e in self.examples],
        }


def check_sft_source(recipe: Recipe, base_dir: Path | None) -> None:
    """What needs no tokenizer: the built-in name is known; a local file's rows are read as
    ``rlsp sft`` reads them (encoding, fields, ``sft.where``) and ``sft.ids`` are among them. A hub
    dataset is only checked for the shape of its name, not downloaded."""
    source = recipe.sft.source
    _check_builtin(source)
    if source.startswith("builtin:"):
        return
    check_data_source(source, base_dir, "sft.source")
    if is_file_source(source):
        examples, _, _ = read_sft_examples(recipe, base_dir)
        if recipe.sft.select == "ids":
            select_examples(examples, "ids", recipe.sft.n, recipe.sft.ids)


def _check_builtin(source: str) -> None:
    if source.startswith("builtin:") and source != ARITH_TRACES:
        raise DataError(f"sft.source: unknown built-in dataset {source!r}; the built-in one is {ARITH_TRACES!r}.")


def read_sft_examples(
    recipe: Recipe, base_dir: Path | None = None
) -> tuple[list[SftExample], str, int]:
    """Every usable row of ``sft.source`` as an example (tokens not yet measured), where it came
    from, and how many rows ``sft.on_bad_row: skip`` dropped."""
    cfg = recipe.sft
    if cfg.source == ARITH_TRACES:
        from rlsp.sft.arith_traces import arith_traces

        traces = arith_traces(
            cfg.arith.size, recipe.data.arith.levels, recipe.run.seed, cfg.arith.error_share
        )
        return traces, cfg.source, 0
    _check_builtin(cfg.source)
    read = read_rows(cfg.source, split=cfg.split, subset=cfg.subset, on_bad_row=cfg.on_bad_row,
                     base_dir=base_dir, field="sft.source")
    rows = _filter_rows(read.rows, cfg.where, read.where)
    examples = [_to_example(number, row, recipe, read.where) for number, row in rows]
    kept = [e for e in examples if e is not None]
    return kept, read.where, read.malformed + len(examples) - len(kept)


def prepare_sft_data(recipe: Recipe, tokenizer, base_dir: Path | None = None,
                     training_messages: MessagesHook | None = None) -> SftData:
    """Read, measure, drop the too long, select: everything but the training itself.

    ``training_messages`` changes each example's prompt messages as training will see them
    (inoculation prompting), so lengths are measured on what is trained."""
    cfg = recipe.sft
    examples, where, skipped = read_sft_examples(recipe, base_dir)
    measured = [dataclasses.replace(e, tokens=count_tokens(tokenizer, e, recipe, training_messages))
                for e in examples]
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
        skipped=skipped,
        too_long=too_long,
        pool_tokens=length_stats([e.tokens for e in measured]),
        selected_tokens=length_stats([e.tokens for e in selected]),
    )


def conversation(example: SftExample, recipe: Recipe,
                 training_messages: MessagesHook | None = None) -> dict[str, list[dict]]:
    """TRL's conversational prompt-completion row: the loss falls on the completion only."""
    prompt = chat_messages(Example(example.prompt, ""), recipe.data)
    return {
        "prompt": training_messages(prompt) if training_messages else prompt,
        "completion": [{"role": "assistant", "content": example.response}],
    }


def count_tokens(tokenizer, example: SftExample, recipe: Recipe,
                 training_messages: MessagesHook | None = None) -> int:
    """Tokens of prompt + response as trained: the whole conversation through the chat template."""
    row = conversation(example, recipe, training_messages)
    encoded = tokenizer.apply_chat_template(
        row["prompt"] + row["completion"], tokenize=True, return_dict=True
    )
    return len(encoded["input_ids"])


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


def _to_example(number: int, row: dict, recipe: Recipe, where: str) -> SftExample | None:
    """The row as an example; None for a row lacking a mapped field under ``sft.on_bad_row: skip``."""
    try:
        return _row_to_example(number, row, recipe, where)
    except DataError:
        if recipe.sft.on_bad_row == "skip":
            return None
        raise


def _row_to_example(number: int, row: dict, recipe: Recipe, where: str) -> SftExample:
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
            f"{sorted(row)}. Set sft.{option} to the column that holds it, or sft.on_bad_row=skip to drop such rows."
        )
    return str(value)
