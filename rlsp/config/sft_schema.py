"""Recipe section for the SFT warm-start: data source, example selection, optimisation, saving.

The prompt side (``data.prompt_template``, ``data.system_prompt``, ``data.arith.levels``) comes
from the recipe's ``data`` section, so warm-start prompts look exactly like RL and eval prompts.
LoRA settings live in ``model.lora``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator
from pydantic_core.core_schema import ValidationInfo

from rlsp.config.fields import option, section


@section
class ArithTraceConfig:
    size: int = option(
        200,
        help="Traces generated from the TRAIN split of the built-in arithmetic task (levels from data.arith.levels).",
        ge=1,
    )
    error_share: float = option(
        0.25,
        help="Share of traces that make a mistake, catch it in the check ('Wait, ... that's not right') "
        "and correct it.",
        ge=0.0,
        le=1.0,
    )


@section
class SFTConfig:
    source: str = option(
        "builtin:arith_traces",
        help="'builtin:arith_traces' (generated long-CoT traces for the arithmetic task), a .jsonl/.json/.parquet "
        "file (relative paths resolve against the recipe's folder, then the working directory), or a "
        "datasets-hub name (needs a network).",
    )
    subset: str | None = option(
        None, help="Configuration name of a hub dataset that has several (as data.subset)."
    )
    split: str = option("train", help="Split to read for hub datasets.")
    on_bad_row: Literal["error", "skip"] = option(
        "error",
        help="Rows that are not JSON objects or lack a mapped field: 'error' stops with the row number; "
        "'skip' drops them and counts them in sft_data_stats.json.",
    )
    prompt_field: str = option(
        "question", help="Column holding the problem text (put into data.prompt_template)."
    )
    response_field: str = option(
        "solution", help="Column holding the long chain of thought the model learns to write."
    )
    response_template: str | None = option(
        None,
        help="Build the response from several columns instead of response_field, e.g. "
        "'<think>\\n{deepseek_thinking_trajectory}\\n</think>\\n\\n{deepseek_attempt}'.",
    )
    id_field: str | None = option(
        None,
        help="Column identifying a row (for select: ids and the saved selection); null: the row number.",
    )
    difficulty_field: str | None = option(
        None,
        help="Numeric column ranking difficulty (higher is harder); needed by select: hardest.",
    )
    where: dict = option(
        dict,
        help="Keep only rows whose columns equal these values, e.g. {solution_type: qwq_32b_preview}.",
    )
    ids: list[int | str] = option(
        list, help="Row ids to train on, with select: ids (compared as text)."
    )
    select: Literal["random", "longest", "hardest", "ids"] = option(
        "random",
        help="How to pick n examples: 'random' (seeded with run.seed), 'longest' (most tokens), 'hardest' "
        "(largest difficulty_field) or 'ids' (the ids list).",
        validate_default=True,
    )
    n: int | None = option(
        None, help="Examples to train on; null: all that fit in max_length.", ge=1
    )
    max_length: int = option(
        4096,
        help="Context length in tokens (prompt + response); longer examples are dropped and counted.",
        ge=16,
    )
    epochs: float = option(3.0, help="Passes over the selected examples.", gt=0.0)
    max_steps: int | None = option(
        None, help="Stop after this many optimizer steps (overrides epochs).", ge=1
    )
    learning_rate: float = option(1e-5, help="Peak learning rate (AdamW).", gt=0.0)
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = option(
        "cosine", help="Learning-rate schedule after warm-up."
    )
    warmup_ratio: float = option(
        0.0,
        help="Share of the optimizer steps spent warming the learning rate up linearly.",
        ge=0.0,
        lt=1.0,
    )
    weight_decay: float = option(0.0, help="AdamW weight decay.", ge=0.0)
    max_grad_norm: float = option(1.0, help="Clip the gradient norm to this.", gt=0.0)
    per_device_batch_size: int = option(1, help="Sequences per device per forward/backward.", ge=1)
    gradient_accumulation_steps: int = option(
        1,
        help="Micro-batches per optimizer step; global batch = per_device_batch_size x this x processes.",
        ge=1,
    )
    gradient_checkpointing: bool = option(
        False, help="Recompute activations in the backward pass to save memory."
    )
    packing: bool = option(
        False,
        help="Pack several examples into each max_length sequence (TRL best-fit packing); "
        "off keeps one example per row.",
    )
    merge_adapters: bool = option(
        True,
        help="With model.lora: save base + adapter merged into plain weights; false saves only the adapter "
        "(rlsp.modeling.causal_lm.load_causal_lm merges it at load time).",
    )
    logging_steps: int = option(10, help="Log the loss every N optimizer steps.", ge=1)
    save_steps: int = option(
        0, help="Save a checkpoint every N optimizer steps (0: only the final model).", ge=0
    )
    save_total_limit: int = option(2, help="How many step checkpoints to keep.", ge=1)
    report_to: Literal["none", "tensorboard", "wandb"] = option(
        "none",
        help="Where the trainer also sends its logs (the log history is always saved as sft_log.json).",
    )
    arith: ArithTraceConfig = option(
        ArithTraceConfig, help="Settings of the built-in arithmetic traces."
    )

    @field_validator("select")
    @classmethod
    def _select_has_what_it_needs(cls, value: str, info: ValidationInfo) -> str:
        if value == "hardest" and not info.data.get("difficulty_field"):
            raise ValueError(
                "select 'hardest' ranks rows by sft.difficulty_field; set it to a numeric column"
            )
        if value == "ids" and not info.data.get("ids"):
            raise ValueError("select 'ids' needs the list sft.ids, e.g. sft.ids=[3, 17, 42]")
        if value != "ids" and info.data.get("ids"):
            raise ValueError(
                f"sft.ids is set but select is {value!r}; set select: ids or remove the ids"
            )
        return value
