"""LoRA adapters (PEFT) for ``model.lora``: the one builder and the one target check that
``rlsp sft`` and ``rlsp train`` share, so both accept exactly the same ``target_modules``."""

from __future__ import annotations

from torch import nn

from rlsp.config.train_schema import LoraConfig
from rlsp.errors import ConfigError, close_matches


def peft_lora_config(lora: LoraConfig):
    """PEFT's ``LoraConfig`` for ``model.lora``, or None when LoRA is off (full fine-tuning)."""
    if not lora.enabled:
        return None
    from peft import LoraConfig as PeftLoraConfig

    targets = "all-linear" if lora.target_modules == ["all-linear"] else list(lora.target_modules)
    return PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        use_rslora=lora.use_rslora,
        task_type="CAUSAL_LM",
    )


def add_lora(model: nn.Module, lora: LoraConfig) -> nn.Module:
    """``model`` wrapped with trainable LoRA adapters (PEFT); the base weights are frozen."""
    from peft import get_peft_model

    check_lora_targets(model, lora)
    return get_peft_model(model, peft_lora_config(lora))


def check_lora_targets_of(config, lora: LoraConfig) -> None:
    """``check_lora_targets`` on an empty skeleton built from the model's ``config``: no weights
    are read, so a typo in a 32B recipe fails in a second (and before a ZeRO-3 set-up would shard it)."""
    if not lora.enabled or lora.target_modules == ["all-linear"]:
        check_lora_targets(None, lora)
        return
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights():
        skeleton = AutoModelForCausalLM.from_config(config)
    check_lora_targets(skeleton, lora)


def check_lora_targets(model: nn.Module | None, lora: LoraConfig) -> None:
    """Every target names a module of ``model`` (as PEFT matches them: the full name or its last
    parts), and none is the output head. ``model`` may be None when the targets are 'all-linear'."""
    if not lora.enabled:
        return
    targets = list(lora.target_modules)
    if "all-linear" in targets:
        if len(targets) > 1:
            raise ConfigError("model.lora.target_modules: 'all-linear' must stand alone, e.g. [all-linear].")
        return
    names = [name for name, _ in model.named_modules() if name]
    linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
    missing = [t for t in targets if not any(_matches(n, t) for n in names)]
    if missing:
        hints = [f"{t!r} -> {close[0]!r}" for t in missing if (close := close_matches(t, linear, n=1))]
        hint = f" Did you mean {', '.join(hints)}?" if hints else ""
        raise ConfigError(
            f"model.lora.target_modules: {', '.join(map(repr, missing))} match no module of the model "
            f"({type(model).__name__}).{hint} Its linear layers are: {', '.join(linear)}; or use [all-linear]."
        )
    head_module = model.get_output_embeddings()
    head = next((n for n, m in model.named_modules() if m is head_module), None)
    if head is not None and any(_matches(head, t) for t in targets):
        raise ConfigError(
            f"model.lora.target_modules: {head!r} is the output head, which rlsp does not adapt (TRL's SFT "
            f"computes the loss from its weight directly, so an adapter there would never train; with tied "
            f"embeddings it would also change the input embeddings). Remove it."
        )


def _matches(module_name: str, target: str) -> bool:
    return module_name == target or module_name.endswith("." + target)
