"""Recipe sections for RL training: reward entries, reward combination, KL, PPO."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from rlsp.config.fields import option, section

# Algorithm parts are named as strings: each name is looked up in its registry in rlsp.algorithms
# (rlsp's own entries and those a module under train.plugins registers) when the recipe loads.
REGISTERED = " Or the name of one registered in a module listed under train.plugins."


@section
class LoraConfig:
    enabled: bool = option(False, help="Train LoRA adapters (PEFT) instead of all weights.")
    r: int = option(8, help="Adapter rank (1 works: rank-1 LoRA).", ge=1)
    alpha: float = option(
        16.0, help="LoRA scaling numerator (scale = alpha / r, or alpha / sqrt(r) with rsLoRA).", gt=0
    )
    dropout: float = option(0.0, help="Dropout on the adapter input.", ge=0.0, lt=1.0)
    target_modules: list[str] = option(
        lambda: ["all-linear"],
        help="Module names to adapt, e.g. [q_proj, v_proj]; "
        "['all-linear'] adapts every linear layer but the output head.",
        min_length=1,
    )
    use_rslora: bool = option(False, help="Rank-stabilised LoRA scaling alpha / sqrt(r).")


@section
class RewardSpec:
    function: str = option(
        ..., help="A registered name (see README), 'package.module:function' or 'path/to/file.py:function'."
    )
    channel: Literal["verifier", "exploration"] = option(
        ..., help="Which reward channel the function feeds: outcome correctness or exploration."
    )
    weight: float = option(1.0, help="Weight of this function inside its channel.")
    kwargs: dict = option(dict, help="Keyword arguments passed to the function on every call.")
    on_error: Literal["raise", "fallback"] = option(
        "raise",
        help="On an exception, wrong length, non-number, NaN or inf: stop the run, "
        "or use fallback_value and count the error.",
    )
    fallback_value: float = option(0.0, help="Score given to a failed sample when on_error is 'fallback'.")
    name: str | None = option(None, help="Name in logs; defaults to the function's name.")
    timeout_s: float = option(
        600.0, help="Seconds one call (a step's batch) may take; past it the run stops, naming this function, "
        "whatever on_error says. A judge's first call includes loading its model.", gt=0.0
    )


@section
class AlphaConfig:
    schedule: str = option(
        "constant", help="How alpha (the verifier channel's weight) moves over training: constant, linear or "
        "cosine." + REGISTERED
    )
    start: float = option(0.8, help="Alpha at step 0 (paper: 0.8).", ge=0.0, le=1.0)
    end: float = option(0.8, help="Alpha at the last step, for linear and cosine.", ge=0.0, le=1.0)
    warmup_steps: int = option(0, help="Steps that hold alpha at `start` before it moves.", ge=0)


@section
class RewardMixConfig:
    mode: Literal["paper", "decoupled"] = option(
        "paper",
        help="'paper': terminal reward alpha*verifier + (1-alpha)*exploration, one value head, one GAE. "
        "'decoupled': each channel normalised on its own with its own value head and GAE; advantages mixed by alpha.",
    )
    alpha: AlphaConfig = option(AlphaConfig, help="Weight of the verifier channel against exploration.")
    gate_exploration: bool = option(
        False, help="Count the exploration reward only for samples whose verifier score reaches gate_threshold."
    )
    gate_threshold: float = option(1.0, help="Verifier score a sample needs for its exploration reward to count.")
    normalize: bool | None = option(
        None, help="Normalise the sequence rewards with running mean and std (decoupled mode: each channel on its "
        "own), clipped to [-clip, clip]. null: on in decoupled mode, which is built on it; in paper mode the "
        "estimator's paper (gae, reinforce++: on; grpo, dr_grpo, rloo: off, they compare the raw scores of a group)."
    )
    clip: float = option(10.0, help="Clip normalised rewards to [-clip, clip] (paper: 10).", gt=0.0)


@section
class KLConfig:
    coef: float = option(0.05, help="KL coefficient beta (paper: 0.05, fixed).", ge=0.0)
    estimator: str | None = option(
        None, help="Per-token KL estimator: k1, k2 or k3 (Schulman's)." + REGISTERED + " null: k1 in the reward "
        "(RLSP), k3 in the loss (GRPO). Only these give "
        "the KL's gradient where they stand: k1 in the loss has none (its expectation does not depend on the policy) "
        "and k2/k3 in the reward bias it, so those are refused; k2 in the loss gives KL(pi||ref)'s gradient exactly, "
        "k3 that of KL(ref||pi) (tests/test_conformance_kl.py)."
    )
    placement: Literal["reward", "loss"] | None = option(
        None, help="'reward': subtract beta*KL from the rewards (per token; summed over the sequence for grpo-like "
        "estimators); 'loss': add beta*KL to the policy loss. null: the estimator's paper (gae, rloo, reinforce++: "
        "reward; grpo, dr_grpo: loss)."
    )
    adaptive: bool = option(False, help="Adapt beta towards `target` KL (Ziegler et al.).")
    target: float = option(6.0, help="Target KL per sequence for the adaptive controller.", gt=0.0)
    horizon: int = option(10000, help="Adaptive controller horizon, in samples.", ge=1)


@section
class TrainConfig:
    plugins: list[str] = option(
        list, help="Modules ('package.module') or files ('path/to/algos.py', relative to the recipe's folder) "
        "imported when the recipe loads, before its algorithm names are looked up: the advantage estimators, "
        "policy losses, KL estimators, loss aggregations and alpha schedules they register become choosable by "
        "name (see rlsp/algorithms/part_registry.py)."
    )
    steps: int = option(100, help="PPO steps (each: generate, score, update).", ge=1)
    prompts_per_step: int = option(16, help="Prompts sampled per step (rollout batch).", ge=1)
    samples_per_prompt: int = option(1, help="Completions per prompt (>1 for grpo, rloo).", ge=1)
    ppo_epochs: int = option(1, help="Passes over each step's rollouts.", ge=1)
    minibatch_size: int = option(16, help="Sequences per optimizer step.", ge=1)
    micro_batch_size: int = option(
        4, help="Sequences per forward/backward; minibatch_size / micro_batch_size is the gradient accumulation.", ge=1
    )
    actor_lr: float = option(1e-6, help="Policy learning rate (paper: 2e-7 at 8B).", gt=0.0)
    critic_lr: float = option(1e-5, help="Critic learning rate (paper: 2e-6 at 8B).", gt=0.0)
    adam_betas: list[Annotated[float, Field(ge=0.0, lt=1.0)]] = option(
        lambda: [0.9, 0.95], help="AdamW betas, each in [0, 1) (paper: 0.9, 0.95).", min_length=2, max_length=2)
    weight_decay: float = option(0.0, help="AdamW weight decay.", ge=0.0)
    lr_schedule: Literal["constant", "cosine"] = option("constant", help="Learning-rate schedule after warm-up.")
    warmup_steps: int = option(0, help="Linear learning-rate warm-up, in optimizer steps.", ge=0)
    min_lr_ratio: float = option(0.1, help="Cosine decays to this fraction of the learning rate.", ge=0.0, le=1.0)
    max_grad_norm: float = option(1.0, help="Clip the gradient norm to this.", gt=0.0)
    advantage_estimator: str = option(
        "gae", help="gae, grpo, dr_grpo, rloo or reinforce++. 'gae' uses the critic; the others are critic-free, and "
        "grpo, dr_grpo and rloo compare the samples_per_prompt > 1 answers to one prompt. Settings left null take "
        "the estimator's paper values." + REGISTERED
    )
    gamma: float = option(1.0, help="Discount (paper: 1).", ge=0.0, le=1.0)
    lam: float = option(0.95, help="GAE lambda (paper: 0.95).", ge=0.0, le=1.0)
    clip_eps: float | None = option(
        None, help="Lower clip range of the policy ratio. null: the policy loss's paper (ppo: 0.2; gspo: 3e-4; "
        "cispo: 1, i.e. no lower bound).", gt=0.0
    )
    dual_clip: float | None = option(
        None,
        help="Dual-clip PPO (Ye et al. 2020): for negative advantages cap the loss at -A x dual_clip, so "
        "a huge ratio cannot blow up the update; > 1, e.g. 3. null: plain PPO clipping (the paper).",
        gt=1.0,
    )
    value_clip_eps: float | None = option(0.2, help="Value clip (paper: 0.2); null disables it.", gt=0.0)
    entropy_coef: float = option(0.0, help="Entropy bonus coefficient.", ge=0.0)
    loss_aggregation: str | None = option(
        None, help="How per-token losses are averaged: token-mean, seq-mean-token-mean, seq-mean-token-sum or "
        "token-sum-norm." + REGISTERED + " 'token-sum-norm': sum over tokens / (rows x "
        "generation.max_new_tokens), Dr. GRPO's constant normaliser. null: the algorithm's paper: cispo token-mean; "
        "else by estimator (gae, reinforce++: token-mean; grpo: seq-mean-token-mean; dr_grpo: token-sum-norm; "
        "rloo: seq-mean-token-sum). GSPO always averages its sequence ratios over sequences."
    )
    policy_loss: str = option(
        "ppo", help="'ppo': clipped token ratios (paper); 'gspo': one clipped ratio per sequence (GSPO; use "
        "clip_eps ~3e-4, clip_eps_high ~4e-4); 'cispo': REINFORCE weighted by the clipped ratio, no token "
        "dropped (MiniMax-M1). See rlsp/algorithms/policy_losses.py." + REGISTERED
    )
    clip_eps_high: float | None = option(
        None, help="Upper clip range when it should differ from clip_eps (DAPO clip-higher: 0.28). null: the policy "
        "loss's paper (ppo: clip_eps; gspo: 4e-4; cispo: 4, a weight capped at 5 as ScaleRL's epsilon_max).",
        gt=0.0,
    )
    dynamic_sampling: bool = option(
        False, help="DAPO dynamic sampling: train on groups whose verifier scores differ, drawn from "
        "prompts_per_step x dynamic_sampling_oversample prompts; needs samples_per_prompt > 1."
    )
    dynamic_sampling_oversample: float = option(
        2.0, help="Prompts generated per step under dynamic sampling, as a multiple of prompts_per_step.", ge=1.0
    )
    mask_truncated: bool = option(
        False, help="Leave completions cut at generation.max_new_tokens out of the policy and value losses "
        "(DAPO's overlong filtering); response/truncation_rate shows how many that is."
    )
    tis: Literal["off", "token", "sequence"] = option(
        "off", help="Truncated importance sampling between the generator's log-probs and the trainer's, per "
        "token or per sequence, for rollouts from another engine or precision (mismatch/* is logged anyway)."
    )
    tis_cap: float = option(2.0, help="Upper bound of the importance weights (truncated IS).", gt=0.0)
    whiten_advantages: bool | None = option(
        None, help="Whiten advantages over the batch before the update. null: the estimator's paper (gae: on; "
        "reinforce++ whitens its returns itself; grpo, dr_grpo, rloo: off). true is refused for those: it would "
        "shift group-relative advantages (a group whose answers all scored alike would get a non-zero advantage)."
    )
    critic_warmup_steps: int = option(0, help="Steps that train only the critic, actor frozen (paper: 4).", ge=0)
    kl: KLConfig = option(KLConfig, help="KL penalty to the reference model.")
    reward: RewardMixConfig = option(RewardMixConfig, help="How the two reward channels combine.")
    checkpoint_every: int = option(0, help="Save a checkpoint every N steps (0: only at the end).", ge=0)
    keep_checkpoints: int = option(2, help="How many step checkpoints to keep.", ge=1)
    eval_every: int = option(0, help="Evaluate on the held-out set every N steps (0: only before and after).", ge=0)
    gradient_checkpointing: bool = option(False, help="Trade compute for memory in policy and critic.")
    padding_free: bool = option(
        True, help="Policy, reference and critic passes: each prompt once per micro-batch "
        "with its samples packed behind it, "
        "no padding (sdpa attention; checked against the plain pass on the first batch). Off while hooks are set."
    )
    log_behaviours: bool = option(
        True, help="Log to TensorBoard each step the share of samples that backtrack, verify, explore or hedge "
        "(behaviour/<name>/share, /per_1k), by the marker detector of rlsp inspect."
    )
    behaviour_markers: dict | None = option(
        None, help="Replace the detector's marker phrases: {behaviour: [phrase, ...]}; null: the defaults."
    )
