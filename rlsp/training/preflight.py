"""Everything ``rlsp train`` checks and reads before a model loads, in one function that the
command and ``rlsp validate`` both call (``prepare_training``), so the two cannot drift apart.

Each check names the field to change. Field-level checks (types, ranges) already ran at load
time; ``check_training_recipe`` holds the ones that involve several fields at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from rlsp.algorithms import estimator_traits
from rlsp.analysis.markers import check_markers
from rlsp.config import Recipe
from rlsp.config.schema import DataConfig
from rlsp.data import Example, load_or_check_examples
from rlsp.errors import ConfigError
from rlsp.eval.checks import check_group_by
from rlsp.hooks import Hook, build_hooks
from rlsp.launch_env import launched_with_deepspeed
from rlsp.modeling.causal_lm import model_config
from rlsp.modeling.lora import check_lora_targets_of
from rlsp.scoring.channels import build_reward_functions
from rlsp.scoring.reward_function import RewardFunction
from rlsp.scoring.verifier import Verifier, build_verifier
from rlsp.training.deepspeed_checks import check_deepspeed_recipe, check_devices
from rlsp.training.deepspeed_launch import launch_config


@dataclass
class TrainingInputs:
    """What ``prepare_training`` read and resolved, for the trainer to use."""

    train_data: list[Example] | None  # None: a hub dataset that validate did not download
    heldout_cfg: DataConfig
    heldout: list[Example] | None
    reward_functions: list[RewardFunction]
    verifier: Verifier
    hooks: list[Hook]
    model_config: object | None  # the model's transformers config; None: not cached (validate)


def prepare_training(recipe: Recipe, base_dir: Path, *, fetch: bool = True) -> TrainingInputs:
    """Every check of ``rlsp train`` that needs no model weights, cheapest first. ``fetch`` False
    (``rlsp validate``) reads local data files but downloads no hub dataset or model config."""
    check_training_recipe(recipe)
    seed = recipe.run.seed
    train = load_or_check_examples(recipe.data, seed, base_dir, "data", fetch)
    heldout_cfg = heldout_config(recipe)
    heldout = load_or_check_examples(heldout_cfg, seed, base_dir, "heldout", fetch)
    if heldout is not None:
        check_group_by(recipe.eval.group_by, heldout.examples)
    reward_functions = build_reward_functions(recipe.rewards, base_dir)
    verifier = build_verifier(recipe.verifier, base_dir)
    hooks = build_hooks(recipe.hooks, base_dir)
    config = model_config(recipe.model.name_or_path, local_only=not fetch)
    if config is not None:
        check_lora_targets_of(config, recipe.model.lora)
        for hook in hooks:
            hook.check_model(config)
    return TrainingInputs(train.examples if train else None, heldout_cfg, heldout.examples if heldout else None,
                          reward_functions, verifier, hooks, config)


def check_training_recipe(recipe: Recipe) -> None:
    from rlsp.generation.vllm_backend import check_vllm_backend

    check_vllm_backend(recipe.generation)
    if launched_with_deepspeed():  # before the other checks: a broken launch config is the first thing to fix
        check_devices()
        check_deepspeed_recipe(recipe, launch_config())
    t = recipe.train
    rollout = t.prompts_per_step * t.samples_per_prompt
    problems = []
    if not recipe.rewards:
        problems.append("rewards: no reward functions; add at least one, e.g. {function: math, channel: verifier}.")
    if recipe.generation.backend == "vllm" and any(h.kwargs.get("during_generation") for h in recipe.hooks):
        problems.append("hooks: a hook with during_generation=true acts on the torch model's forward passes, which "
                        "generation.backend=vllm does not run; use generation.backend: hf (or auto).")
    if recipe.data.source == "builtin:arith" and recipe.data.split != "train":
        problems.append(f"data.split: RL on the arithmetic task trains on split 'train', not {recipe.data.split!r}.")
    if t.minibatch_size % t.micro_batch_size:
        problems.append(
            f"train.minibatch_size ({t.minibatch_size}) must be a multiple of "
            f"train.micro_batch_size ({t.micro_batch_size})."
        )
    if rollout % t.minibatch_size:
        problems.append(
            f"train.minibatch_size ({t.minibatch_size}) must divide the rollout batch "
            f"(prompts_per_step x samples_per_prompt = {rollout})."
        )
    traits = estimator_traits(t.advantage_estimator)
    if traits.per_sequence and t.samples_per_prompt < 2:
        problems.append(
            f"train.samples_per_prompt: '{t.advantage_estimator}' compares samples of the same prompt; use 2 or more."
        )
    if not traits.critic and t.critic_warmup_steps:
        problems.append(f"train.critic_warmup_steps: '{t.advantage_estimator}' has no critic to warm up; set it to 0.")
    alpha = t.reward.alpha
    lowest = min(alpha.start, alpha.end if alpha.schedule != "constant" else alpha.start)
    if t.reward.mode == "decoupled" and t.kl.placement == "reward" and t.kl.coef > 0 and lowest == 0:
        problems.append(
            "train.reward.alpha: decoupled mode carries the KL reward on the verifier channel, scaled by "
            "1/alpha, so alpha must stay above 0; raise alpha.end or set train.kl.placement=loss."
        )
    problems += useless_settings(recipe) + loss_combinations(t)
    if t.behaviour_markers is not None:
        try:
            check_markers(t.behaviour_markers, "train.behaviour_markers")
        except ConfigError as e:
            problems.append(str(e))
    if recipe.model.precision == "fp16":
        problems.append("model.precision: fp16 training needs loss scaling, which rlsp train does not do; "
                        "use 'auto' or 'bf16'.")
    if problems:
        raise ConfigError(problems[0] + (f" (and {len(problems) - 1} more problem{'s' * (len(problems) > 2)}: "
                                         f"rlsp validate lists the next once this one is fixed)"
                                         if len(problems) > 1 else ""))


def loss_combinations(t) -> list[str]:
    """Policy-loss settings that contradict each other."""
    problems = []
    if t.policy_loss == "gspo" and not estimator_traits(t.advantage_estimator).per_sequence:
        problems.append(f"train.policy_loss: 'gspo' weighs whole sequences by one advantage, but "
                        f"'{t.advantage_estimator}' gives each token its own; use grpo, dr_grpo or rloo.")
    if t.dual_clip is not None and t.policy_loss != "ppo":
        problems.append(f"train.dual_clip applies to the 'ppo' loss only, not '{t.policy_loss}'; set it to null.")
    if t.dynamic_sampling and t.samples_per_prompt < 2:
        problems.append("train.dynamic_sampling keeps groups whose samples scored differently; with "
                        "train.samples_per_prompt=1 every group has one sample. Use 2 or more.")
    return problems


def useless_settings(recipe: Recipe) -> list[str]:
    """Settings that would run without error and train nothing."""
    t, problems = recipe.train, []
    if t.critic_warmup_steps >= t.steps:
        problems.append(f"train.critic_warmup_steps ({t.critic_warmup_steps}) covers all {t.steps} train.steps: the "
                        "policy would never be updated; lower it or raise train.steps.")
    if estimator_traits(t.advantage_estimator).per_sequence and recipe.generation.temperature == 0:
        problems.append(f"generation.temperature: 0 makes the {t.samples_per_prompt} samples of a prompt identical "
                        f"(greedy), so '{t.advantage_estimator}' advantages are all zero; sample at temperature > 0.")
    channels = {r.channel for r in recipe.rewards}
    alpha = t.reward.alpha
    alphas = {alpha.start} if alpha.schedule == "constant" else {alpha.start, alpha.end}
    if recipe.rewards and "verifier" not in channels and alphas == {1.0}:
        problems.append("train.reward.alpha: 1 trains on the verifier channel alone, but no reward function feeds "
                        "it; add {function: math, channel: verifier} or lower alpha.")
    if recipe.rewards and "exploration" not in channels and alphas == {0.0}:
        problems.append("train.reward.alpha: 0 trains on the exploration channel alone, but no reward function "
                        "feeds it; add an exploration reward or raise alpha.")
    return problems


def heldout_config(recipe: Recipe):
    """The held-out prompts: ``recipe.heldout``, or the arithmetic task's held-out split."""
    if recipe.heldout is not None:
        return recipe.heldout
    if recipe.data.source == "builtin:arith":
        return dataclasses.replace(recipe.data, split="heldout", limit=None, shuffle=False)
    raise ConfigError("heldout: set a held-out dataset (same fields as data:) to evaluate before and after training.")
