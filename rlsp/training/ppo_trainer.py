"""``rlsp train``: the RLSP PPO loop.

One step, in order (each phase timed and logged as ``time/<phase>``):
  1 generate     sample completions for this step's prompts
  2 score        run every reward function; sum them into the verifier and exploration channels
  3 logprobs     policy (old), reference and critic passes over the samples, no gradients
                 (the old policy pass is skipped when phase 5 is one optimizer step: see update.py)
  4 advantages   KL, reward mixing/normalisation, GAE or a critic-free estimator
  5 update       PPO epochs over minibatches (critic only during warm-up)
  6 log          TensorBoard scalars, rollouts.jsonl
  7 checkpoint   every train.checkpoint_every steps and at the end
  8 evaluate     held-out accuracy every train.eval_every steps
"""

from __future__ import annotations

import dataclasses
import json
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rlsp.algorithms import (
    AdaptiveKLController,
    AlphaSchedule,
    FixedKLController,
    kl_estimate,
)
from rlsp.config import Recipe, output_dir
from rlsp.data.prompts import chat_messages
from rlsp.eval.metrics import eval_metrics
from rlsp.eval.run import evaluate_model
from rlsp.generation import make_backend, resolve_backend, sampling_params
from rlsp.generation.sync_check import SyncMismatchError
from rlsp.hooks import HookRunner
from rlsp.output_folder import own_output_dir, release_output_dir
from rlsp.precision import resolve_precision
from rlsp.training import preflight
from rlsp.training import step_records as records
from rlsp.training.advantage_step import ChannelNormalizers, global_advantages, value_heads
from rlsp.training.components import build_models
from rlsp.training.distributed import rank_seed, training_device
from rlsp.training.dynamic_sampling import informative_group_share, prompts_to_draw, shape_batch
from rlsp.training.forward import completion_logprobs, completion_values
from rlsp.training.nonfinite import NonFiniteError
from rlsp.training.packing import micro_batch_order
from rlsp.training.rollout import PromptSampler, generate_step, score_step
from rlsp.training.run_logs import RunLogs
from rlsp.training.run_state import checkpoint_to_resume, load_run, nothing_kept, save_run
from rlsp.training.update import UpdateBatch, padding_free, ppo_update, single_optimizer_step


class PhaseTimer:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        yield
        self.seconds[phase] = time.perf_counter() - start


class Trainer:
    def __init__(self, recipe: Recipe, recipe_path: str | Path, resume: bool = False, overwrite: bool = False):
        self.start_time = time.time()
        self.recipe, self.cfg = recipe, recipe.train
        base_dir = Path(recipe_path).resolve().parent
        self.run_dir = output_dir(recipe, recipe_path)
        # Everything cheap that can fail comes first: recipe, data, rewards, hooks, the model's config
        # (the same function rlsp validate calls), then the run directory.
        inputs = preflight.prepare_training(recipe, base_dir)
        own_output_dir(self.run_dir, "train")  # before --overwrite removes anything: another run may be writing
        self.resume_from = checkpoint_to_resume(self.run_dir, self.cfg.steps, resume, overwrite)
        self.train_data, self.heldout_cfg, self.heldout = inputs.train_data, inputs.heldout_cfg, inputs.heldout
        self.reward_functions, self.verifier = inputs.reward_functions, inputs.verifier
        self.hooks = HookRunner(inputs.hooks, "rl", lambda: self.models.dist.unwrap(self.models.policy), self.run_dir)
        config = inputs.model_config
        self.hook_names = [spec.hook for spec in recipe.hooks]  # logged with each rollout
        self.behaviours = records.behaviour_detector(self.cfg)  # None when train.log_behaviours is off
        a = self.cfg.reward.alpha
        self.alpha = AlphaSchedule(a.schedule, a.start, a.end, self.cfg.steps, a.warmup_steps)

        # Before any model loads, so a slow or lossy choice is warned about first.
        self.precision = resolve_precision(recipe.model.precision, training_device(recipe), training=True)

        self.backend_name = resolve_backend(recipe)  # decided once, used by all
        torch.manual_seed(recipe.run.seed)  # the same initial weights (a critic's value head) on every process
        self.models = build_models(recipe, value_heads(self.cfg), self._total_optimizer_steps(), self.precision,
                                   getattr(config, "hidden_size", 0), self.backend_name)
        dist = self.models.dist
        dist.check_shared_folder(self.run_dir)  # before any process writes a checkpoint there
        if dist.is_main_process:
            print(self.precision.describe())
        # From here each process draws from its own stream: the ranks' samples differ.
        self.sampling_seeds = [rank_seed(recipe.run.seed, rank) for rank in range(dist.num_processes)]
        torch.manual_seed(self.sampling_seeds[dist.process_index])
        self.backend = make_backend(dist.unwrap(self.models.policy), self.models.tokenizer, recipe.generation,
                                    self.sampling_seeds[dist.process_index], self.backend_name)
        if (lockstep := dist.generation_lockstep()) is not None:
            self.backend.lockstep = lockstep
        self.sampler = PromptSampler(len(self.train_data), recipe.run.seed)
        kl = self.cfg.kl
        self.kl_ctl = (AdaptiveKLController(kl.coef, kl.target, kl.horizon) if kl.adaptive
                       else FixedKLController(kl.coef))
        self.normalizers = ChannelNormalizers.create(self.cfg.reward.clip)
        rollout_size = self.cfg.prompts_per_step * self.cfg.samples_per_prompt
        self.reuse_update_logprobs = single_optimizer_step(self.cfg, rollout_size)
        self.step, self.position, self.eval_before = 0, 0, None
        if self.resume_from is not None:
            load_run(self, self.resume_from)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logs = RunLogs(self.run_dir, self.step if self.resume_from is not None else None,
                            enabled=dist.is_main_process)

    # -- the loop ---------------------------------------------------------------------------
    def fit(self) -> dict:
        if self.eval_before is None:
            self.eval_before = self.evaluate("eval before")
            self.logs.scalars(0, self.eval_before)
        bar = tqdm(total=self.cfg.steps, initial=self.step, desc="rlsp train", unit="step",
                   disable=not self.models.dist.is_main_process)
        self.hooks.step = self.step
        self.hooks.fire("train_start")
        try:
            while self.step < self.cfg.steps:
                self.step += 1
                try:
                    scalars = self.train_step()
                except (NonFiniteError, SyncMismatchError) as e:  # the step is lost; say what is kept
                    raise type(e)(f"step {self.step}: {e}. {nothing_kept(self.run_dir, self.step, e.causes)}") from None
                bar.update(1)
                bar.set_postfix(acc=f"{scalars['verifier/accuracy']:.2f}", kl=f"{scalars['kl/mean']:.3f}",
                                len=f"{scalars['response/length_mean']:.0f}")
        finally:
            self.hooks.end()  # hooks detach before the final evaluation, and after any error
            bar.close()
        after = self.evaluate("eval after")
        self.logs.scalars(self.step, after)
        self.logs.close()
        self.models.save_final(self.run_dir / "final")
        summary = {
            "heldout_accuracy_before": self.eval_before["eval/accuracy"],
            "heldout_accuracy_after": after["eval/accuracy"],
            "heldout_boxed_rate_before": self.eval_before["eval/boxed_rate"],
            "heldout_boxed_rate_after": after["eval/boxed_rate"],
            "heldout_size": len(self.heldout), "model": self.recipe.model.name_or_path, "steps": self.step,
            "wall_seconds": round(time.time() - self.start_time, 1),
            "precision": self.precision.summary(), "sampling_seeds": self.sampling_seeds,
        }
        if self.models.dist.is_main_process:
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        release_output_dir(self.run_dir)
        return summary

    def train_step(self) -> dict[str, float]:
        cfg, models, timer, hooks = self.cfg, self.models, PhaseTimer(), self.hooks
        dist = models.dist
        hooks.step = self.step
        alpha = self.alpha.alpha_at(self.step - 1)
        examples = self._draw_prompts()
        with timer("1_generate"), self._autocast(), dist.policy_for_generation(models.policy) as policy:
            generated = self._generate(policy, examples)
        with timer("2_score"):
            scores = score_step(self.reward_functions, generated)
            generated, scores, sampling_stats = shape_batch(cfg, generated, scores)
        seqs, mask = generated.seqs, generated.seqs.completion_mask
        in_reward = cfg.kl.placement == "reward"
        with timer("3_logprobs"), torch.no_grad(), self._autocast():
            old_logp, ref_logp, values = self._score_sequences(seqs, in_reward)
        with timer("4_advantages"):
            kl = None
            if ref_logp is not None and in_reward:
                kl = kl_estimate(old_logp, ref_logp, cfg.kl.estimator) * mask
            adv = global_advantages(cfg, dist, alpha=alpha, verifier=scores.verifier, exploration=scores.exploration,
                                    kl=kl, kl_coef=self.kl_ctl.value, values=values, mask=mask,
                                    group_ids=generated.group_ids, normalizers=self.normalizers)
        with timer("5_update"), self._autocast():
            keep = None
            if cfg.mask_truncated:
                keep = torch.tensor([r != "length" for r in generated.finish_reasons]).float()
            batch = UpdateBatch(seqs, old_logp, ref_logp, adv.advantages, values, adv.returns,
                                self.recipe.generation.max_new_tokens, keep, generated.sampling_logprobs)
            actor = models.actor if self.step > cfg.critic_warmup_steps else None
            update_stats, old_logp = ppo_update(batch, actor, models.critic_opt, cfg, self._temperature(),
                                                0.0 if in_reward else self.kl_ctl.value, dist, hooks)
        if ref_logp is not None and kl is None:  # KL in the loss: measured on the pre-update policy
            kl = kl_estimate(old_logp, ref_logp, cfg.kl.estimator) * mask
        kl_stats = self._update_kl_controller(kl, len(generated.texts))
        with timer("6_log"):
            rows = dist.gather_objects(records.rollout_records(
                self.step, generated, scores, self.reward_functions, adv.trained_rewards,
                self.recipe.verifier.pass_threshold, self.hook_names))
            scalars = {**self._sample_scalars(rows, mask, scores, sampling_stats, timer), **adv.stats, **update_stats,
                       "alpha": alpha, **kl_stats, **records.critic_fit(values, adv.returns, mask, dist),
                       **records.sampling_mismatch(generated.sampling_logprobs, old_logp, mask, dist),
                       **records.sync_check(self.backend, dist)}
            hooks.fire("step_end", scalars=scalars)
            scalars.update(hooks.pop_scalars())
            if self.behaviours is not None:
                scalars.update(records.behaviour_scalars(rows, self.behaviours))
            self.logs.rollouts(rows)
        with timer("7_checkpoint"):
            if self.step == cfg.steps or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0):
                save_run(self)
        with timer("8_evaluate"):
            if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step != cfg.steps:
                scalars.update(self.evaluate(f"eval step {self.step}"))
        scalars.update({f"time/{phase}": s for phase, s in timer.seconds.items()})
        self.logs.scalars(self.step, scalars)  # on the main process: every figure but time/* is the whole batch's
        return scalars

    # -- the step's phases --------------------------------------------------------------------
    def _draw_prompts(self) -> list[dict]:
        """This process's slice of the prompt stream for one step (prompts_per_step is per process;
        more than that under dynamic sampling)."""
        dist, n_prompts = self.models.dist, prompts_to_draw(self.cfg)
        first = self.position + dist.process_index * n_prompts
        self.position += n_prompts * dist.num_processes
        return [self.train_data[i] for i in self.sampler.indices(first, n_prompts)]

    def _generate(self, policy, examples: list[dict]):
        """Phase 1: ``samples_per_prompt`` completions of each example by the current ``policy``."""
        self.backend.sync_weights(policy)
        # training prompts: hooks such as inoculation prompting may change them (never eval's)
        conversations = [self.hooks.training_messages(chat_messages(e, self.recipe.data)) for e in examples]
        with self.hooks.around("generation"):
            generated = generate_step(self.backend, examples, conversations, self.cfg.samples_per_prompt,
                                      sampling_params(self.recipe.generation), self.recipe.generation.batch_size)
        self.backend.release()  # the update needs the memory more
        return generated

    def _score_sequences(self, seqs, kl_in_reward: bool):
        """Phase 3: the policy's log-probs before the update (None where the update computes them),
        the reference's (None without KL) and the critic's values (None without a critic)."""
        models, hooks, temperature = self.models, self.hooks, self._temperature()
        # With one optimizer step per batch the update computes the old log-probs itself, unless
        # the KL has to enter the rewards (phase 4) before the update runs.
        reuse_update_logprobs = (self.reuse_update_logprobs and self.step > self.cfg.critic_warmup_steps
                                 and not (kl_in_reward and self.kl_ctl.value > 0))
        old_logp = ref_logp = values = None
        if not reuse_update_logprobs:
            with hooks.around("forward", role="policy", grad=False):
                old_logp = self._batched(lambda s: completion_logprobs(models.policy, s, temperature,
                                                                       padding_free=self.padding_free)[0], seqs)
        if self.kl_ctl.value > 0:
            with models.reference.model() as reference, hooks.around("forward", role="reference", grad=False):
                ref_logp = self._batched(lambda s: completion_logprobs(reference, s, temperature,
                                                                       padding_free=self.padding_free)[0], seqs)
        if models.critic is not None:
            values = self._batched(lambda s: completion_values(models.critic, s, self.padding_free), seqs)
        return old_logp, ref_logp, values

    def _update_kl_controller(self, kl: torch.Tensor | None, n_samples: int) -> dict[str, float]:
        """Feed the KL per sequence over every process's samples to the controller (its input and
        state stay global); the mean and the coefficient this step used, for the log."""
        kl_sums = self.models.dist.sum_across({"kl": kl.sum().item() if kl is not None else 0.0, "n": n_samples})
        kl_per_sequence, kl_coef = kl_sums["kl"] / kl_sums["n"], self.kl_ctl.value
        self.kl_ctl.update(kl_per_sequence, int(kl_sums["n"]))
        return {"kl/mean": kl_per_sequence, "kl/coef": kl_coef}

    def _sample_scalars(self, rows: list[dict], mask, scores, sampling_stats: dict, timer) -> dict[str, float]:
        """Phase 6's figures about the samples themselves, from every process's ``rows`` (in rank
        order; "correct" by the held-out evaluation's threshold, so training and held-out accuracy
        mean the same) and counts summed across processes."""
        dist = self.models.dist
        counts = informative_group_share(dist.sum_across({"tokens": float(mask.sum()), **sampling_stats, **{
            f"reward_fn/{fn.name}/errors": float(scores.per_function[fn.name].n_errors)
            for fn in self.reward_functions}}))
        generating = dist.max_across({"s": timer.seconds["1_generate"]})["s"]
        return {**records.sample_scalars(rows, [fn.name for fn in self.reward_functions]),
                "reward/trained/mean": sum(r["trained_reward"] for r in rows) / len(rows),
                "throughput/tokens_per_s": counts.pop("tokens") / max(generating, 1e-9), **counts}

    # -- helpers ----------------------------------------------------------------------------
    def evaluate(self, desc: str) -> dict[str, float]:
        """Greedy held-out metrics of the current policy (accuracy, boxed rate, lengths, per level)."""
        greedy_generation = dataclasses.replace(self.recipe.generation, temperature=0.0)
        greedy = dataclasses.replace(self.recipe, generation=greedy_generation)
        with self._autocast(), self.models.dist.policy_for_generation(self.models.policy) as policy:
            self.backend.sync_weights(policy)
            records = evaluate_model(policy, self.models.tokenizer, greedy, self.heldout, self.verifier, desc=desc,
                                     samples_per_prompt=1, data_cfg=self.heldout_cfg, backend=self.backend)
        return eval_metrics(records, k=[1], group_by=self.recipe.eval.group_by)

    def _autocast(self):
        """Autocast to the compute dtype over fp32 weights (model.precision), else a no-op."""
        return self.precision.autocast(self.models.dist.device.type)

    def _temperature(self) -> float:
        return self.recipe.generation.temperature or 1.0

    @property
    def padding_free(self) -> bool:
        return padding_free(self.cfg, self.hooks)

    def _batched(self, fn, seqs):
        """``fn`` over micro-batches of rows of similar length, or of whole prompts when padding-free."""
        size = self.cfg.micro_batch_size
        order = micro_batch_order(seqs.prompt_ids, seqs.prompt_mask, seqs.completion_mask, self.padding_free)
        out = torch.cat([fn(seqs.index(order[i : i + size])) for i in range(0, len(order), size)])
        return out[order.argsort()]

    def _total_optimizer_steps(self) -> int:
        rollout = self.cfg.prompts_per_step * self.cfg.samples_per_prompt
        return self.cfg.steps * self.cfg.ppo_epochs * (rollout // self.cfg.minibatch_size)
