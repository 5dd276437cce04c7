"""Training and saving a warm-started model with TRL's ``SFTTrainer``.

Phases: (1) check what can fail cheaply (data rows and fields, token lengths, N, LoRA target
names on an empty model skeleton), (2) load the model, (3) train with loss on the assistant turn
only, (4) save a directory that loads as ``model.name_or_path`` of any other recipe.

Assistant-only loss uses TRL's conversational prompt-completion format with
``completion_only_loss``: TRL tokenizes the prompt (with the generation prompt) and the whole
conversation and masks the common prefix. This works with any chat template; TRL's
``assistant_only_loss`` instead needs ``{% generation %}`` markers, which SmolLM2's template lacks.

Under ``accelerate launch`` (DDP or DeepSpeed, see launch/) the training arguments are built
before the model is loaded, so ZeRO-3 can shard the weights while they load.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from rlsp.config import Recipe
from rlsp.errors import ModelError
from rlsp.hooks import HookRunner, build_hooks
from rlsp.launch_setup import announce_setup
from rlsp.modeling.causal_lm import (
    ALIASES,
    load_merged_adapter,
    load_tokenizer,
    model_config,
    pick_device,
    resolve_model_path,
)
from rlsp.modeling.lora import check_lora_targets_of, peft_lora_config
from rlsp.output_folder import claim_output_dir, own_output_dir
from rlsp.precision import Precision, resolve_precision
from rlsp.sft.dataset import SftData, check_sft_source, conversation, prepare_sft_data
from rlsp.sft.hooked_trainer import hooked_sft_trainer


@dataclass(frozen=True)
class SftResult:
    output_dir: Path
    examples: int
    steps: int
    first_loss: float | None  # the first logged training loss
    last_loss: float | None  # the last logged training loss
    seconds: float  # training time, saving excluded
    saved: str  # 'full' weights, 'merged' LoRA, or the 'adapter' alone


SFT_OUTPUTS = ("config.json", "adapter_config.json", "adapter", "sft_summary.json", "sft_log.json", "diagnostics.jsonl")


def run_sft(recipe: Recipe, recipe_dir: Path | None, out: Path, overwrite: bool = False) -> SftResult:
    """Warm-start ``recipe.model`` on ``recipe.sft`` data and save it to ``out`` (a folder that
    holds an earlier model is refused unless ``overwrite``)."""
    hooks = prepare_sft(recipe, recipe_dir)  # the checks rlsp validate makes, before anything is written
    own_output_dir(out, "sft")  # before --overwrite removes anything, and a folder that takes writes
    claim_output_dir(out, SFT_OUTPUTS, overwrite, "sft")
    precision = sft_precision(recipe)  # resolved once: training, saving and the summary share it
    trainer, data = build_trainer(recipe, recipe_dir, out, precision, hooks)
    # (3) train
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    # (4) save
    saved = save(trainer, recipe, out, precision.weights)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    result = SftResult(
        out,
        len(data.examples),
        trainer.state.global_step,
        losses[0] if losses else None,
        losses[-1] if losses else None,
        seconds,
        saved,
    )
    if trainer.args.process_index == 0:
        (out / "sft_log.json").write_text(json.dumps(trainer.state.log_history, indent=2) + "\n")
        (out / "sft_summary.json").write_text(
            json.dumps({**result.__dict__, "output_dir": str(out),
                        "precision": precision.summary()}, indent=2) + "\n"
        )
    return result


def build_trainer(recipe: Recipe, recipe_dir: Path | None, out: Path, precision: Precision | None = None,
                  hooks: list | None = None):
    """Phases (1) and (2): every check, the data, the model, and TRL's trainer ready to train.
    ``hooks``: what ``prepare_sft`` returned, when the caller ran it already."""
    model_path = resolve_model_path(recipe.model.name_or_path)
    use_cpu = uses_cpu(recipe)
    precision = precision or sft_precision(recipe)
    # (1) cheap checks, before any weights are read (the ones rlsp validate makes too)
    hooks = HookRunner(prepare_sft(recipe, recipe_dir) if hooks is None else hooks, "sft", lambda: None, out)
    try:
        tokenizer = load_tokenizer(recipe.model.name_or_path)
    except OSError as e:  # a hub id without a network, a directory without a model
        raise ModelError(
            f"model.name_or_path: could not load {recipe.model.name_or_path!r}: {e}"
        ) from None
    args = training_arguments(recipe, out, use_cpu, precision.compute == torch.bfloat16,
                              precision.compute == torch.float16)
    data = prepare_sft_data(recipe, tokenizer, recipe_dir, hooks.training_messages)
    if args.process_index == 0:
        print(precision.describe())
        out.mkdir(parents=True, exist_ok=True)
        (out / "sft_data_stats.json").write_text(json.dumps(data.summary(recipe), indent=2) + "\n")
        print(describe_data(data, recipe))
    # (2) model and trainer
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=precision.weights)
    trainer = hooked_sft_trainer(
        hooks,
        model=model,
        args=args,
        train_dataset=Dataset.from_list([conversation(e, recipe, hooks.training_messages) for e in data.examples]),
        processing_class=tokenizer,
        peft_config=peft_lora_config(recipe.model.lora),
    )
    announce_setup(trainer.accelerator.state, "sft")
    return trainer, data


def prepare_sft(recipe: Recipe, recipe_dir: Path | None, *, fetch: bool = True) -> list:
    """Every check of ``rlsp sft`` that needs no weights, cheapest first; the recipe's hooks. The
    command and ``rlsp validate`` both call it. ``fetch`` False (validate) reads local data files
    but downloads no hub dataset or model config."""
    check_sft_source(recipe, recipe_dir)
    hooks = build_hooks(recipe.hooks, recipe_dir)
    try:
        config = model_config(recipe.model.name_or_path, local_only=not fetch)
    except OSError as e:  # a hub id without a network, a directory without a model
        raise ModelError(f"model.name_or_path: could not load {recipe.model.name_or_path!r}: {e}") from None
    if config is not None:
        check_lora_targets_of(config, recipe.model.lora)  # before the ZeRO-3 set-up, which would shard it
        for hook in hooks:
            hook.check_model(config)
    return hooks


def uses_cpu(recipe: Recipe) -> bool:
    return pick_device(recipe.model.device).type == "cpu"


def sft_precision(recipe: Recipe) -> Precision:
    """``model.precision`` for SFT: fp32 master weights under autocast, bf16 weights for 'bf16-pure'."""
    return resolve_precision(recipe.model.precision, pick_device(recipe.model.device), training=True)


def training_arguments(recipe: Recipe, out: Path, use_cpu: bool, bf16: bool, fp16: bool):
    """TRL's SFTConfig from the recipe: loss on the completion only, no truncation surprises."""
    from trl import SFTConfig as TrlSFTConfig

    cfg = recipe.sft
    return TrlSFTConfig(
        output_dir=str(out),
        seed=recipe.run.seed,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is a share of the steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        activation_checkpointing=cfg.gradient_checkpointing,  # the new name of gradient_checkpointing
        use_cpu=use_cpu,
        bf16=bf16,
        fp16=fp16,
        max_length=cfg.max_length,  # longer examples were dropped already; nothing is truncated
        packing=cfg.packing,
        completion_only_loss=True,
        assistant_only_loss=False,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 500,
        save_total_limit=cfg.save_total_limit,
        report_to=[] if cfg.report_to == "none" else [cfg.report_to],
    )


def save(trainer, recipe: Recipe, out: Path, load_dtype: torch.dtype) -> str:
    """Save weights (full, or LoRA merged, or the adapter alone) and the tokenizer with its chat
    template; ``load_dtype`` is the weights dtype a merged adapter's base loads in."""
    main = trainer.args.process_index == 0
    if not recipe.model.lora.enabled:
        trainer.save_model(str(out))
        saved = "full"
    else:
        merge = recipe.sft.merge_adapters
        adapter_dir = out / "adapter" if merge else out
        trainer.save_model(str(adapter_dir))  # gathers ZeRO-3 shards; the adapter alone is small
        if main:
            _name_base_model(adapter_dir, recipe.model.name_or_path)
            if merge:
                # Merged from the saved adapter on one process: the same path for DDP and ZeRO-3.
                with _zero3_paused():
                    load_merged_adapter(adapter_dir, load_dtype).save_pretrained(str(out))
        saved = "merged" if merge else "adapter"
    if main:
        trainer.processing_class.save_pretrained(str(out))
    trainer.accelerator.wait_for_everyone()
    return saved


@contextmanager
def _zero3_paused():
    """Load whole, unsharded weights while a ZeRO-3 run is set up (transformers would shard them)."""
    from transformers.integrations import deepspeed as hf_deepspeed

    ref = hf_deepspeed._hf_deepspeed_config_weak_ref
    config = ref() if ref is not None else None
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if config is not None:
            hf_deepspeed.set_hf_deepspeed_config(config)


def _name_base_model(adapter_dir: Path, name_or_path: str) -> None:
    """Record the base model portably: the alias or hub id as written, a local directory made absolute."""
    config_file = adapter_dir / "adapter_config.json"
    config = json.loads(config_file.read_text())
    local = Path(name_or_path).expanduser()
    config["base_model_name_or_path"] = (
        name_or_path if name_or_path in ALIASES or not local.is_dir() else str(local.resolve())
    )
    config_file.write_text(json.dumps(config, indent=2) + "\n")


def describe_data(data: SftData, recipe: Recipe) -> str:
    """Two lines for the console: what was read, what was dropped and picked, token lengths."""
    cfg = recipe.sft
    stats = data.selected_tokens
    return (
        f"sft data: {data.rows} rows from {data.source}"
        + (f" ({data.skipped} bad rows skipped)" if data.skipped else "")
        + f"; dropped {data.too_long} longer than "
        f"sft.max_length={cfg.max_length} tokens; selected {len(data.examples)} ({cfg.select}).\n"
        f"sft tokens (prompt + response) of the selected: min {stats['min']}, median {stats['median']}, "
        f"p90 {stats['p90']}, max {stats['max']}, mean {stats['mean']}."
    )
