"""``rlsp eval`` and the trainer's held-out checks: sample, verify, score pass@k and maj@k.

Order matters for users: everything cheap that can fail (recipe, eval settings, data file, rows,
breakdown columns, verifier) is checked before the model is loaded. Under ``accelerate launch``
each process takes a slice of the (problem, sample) pairs, verifies its own slice, and the main
process gathers and writes the results.

A record is one sample: ``problem_index`` and ``sample_index`` place it; ``correct`` is the
verifier's verdict; ``parsed`` the answer it read (which majority votes count); ``columns`` the
row's other fields (subject, level...).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from rlsp.config import Recipe
from rlsp.config.schema import DataConfig
from rlsp.data import Example
from rlsp.data.prompts import chat_messages
from rlsp.eval import checks
from rlsp.eval.metrics import group_metrics, sample_metrics
from rlsp.generation import generate_all, make_backend, resolve_backend, sampling_params
from rlsp.modeling.causal_lm import load_causal_lm, pick_device
from rlsp.output_folder import claim_output_dir, own_output_dir
from rlsp.precision import resolve_precision
from rlsp.scoring.verifier import is_boxed_answer
from rlsp.training.distributed import rank_seed


@dataclass(frozen=True)
class EvalSummary:
    metrics: dict[str, float]  # accuracy, pass@k, maj@k, boxed_rate, truncation_rate, mean_length
    groups: dict[str, dict[str, dict[str, float]]]  # column -> value -> {"problems": n, metric: value}
    problems: int
    samples_per_prompt: int
    skipped_rows: int  # rows dropped under data.on_bad_row=skip
    seconds: float
    benchmark: str | None
    source: str  # the data file, hub name or built-in task
    settings: dict  # model, seed and sampling settings, so two summaries can be compared

    @property
    def accuracy(self) -> float:
        return self.metrics["accuracy"]


def evaluate_model(
    model,
    tokenizer,
    recipe: Recipe,
    examples: list[Example],
    verifier,
    desc: str = "eval",
    *,
    samples_per_prompt: int | None = None,
    data_cfg: DataConfig | None = None,
    seed: int | None = None,
    show_progress: bool = True,
    backend=None,
) -> list[dict]:
    """Sample completions for ``examples`` with ``model``, verify them; one record per sample.

    Args:
        samples_per_prompt: completions per example; default ``recipe.eval.samples_per_prompt``.
        data_cfg: prompt template and system prompt to use; default ``recipe.data`` (the trainer
            passes ``recipe.heldout``).
        seed: sampling seed; default ``recipe.run.seed``. Sampling runs in a forked RNG, so the
            same seed gives the same samples (the same draws at every periodic evaluation) and
            the caller's random state is left as it was.
        backend: a generation backend already built on ``model`` (the trainer's, with its weights
            synced); default: one built here from ``recipe.generation``.

    Returns records ordered by (problem_index, sample_index); see the module docstring.
    Sampling settings come from ``recipe.generation`` and the pass threshold from ``recipe.verifier``.
    """
    from accelerate import PartialState

    n = samples_per_prompt or recipe.eval.samples_per_prompt
    data_cfg = data_cfg or recipe.data
    state = PartialState()
    pairs = [(i, j) for i in range(len(examples)) for j in range(n)]
    # Padded so every process makes the same number of generate calls (ZeRO-3 gathering layer by
    # layer needs it); the repeated pairs are dropped after the gather.
    with state.split_between_processes(pairs, apply_padding=state.num_processes > 1) as mine:
        records = []
        if mine:
            # each process its own stream: samples of the same problem on two processes differ
            with _seeded(rank_seed(recipe.run.seed if seed is None else seed, state.process_index), model):
                completions = generate_all(
                    backend or make_backend(model, tokenizer, recipe.generation, recipe.run.seed,
                                            resolve_backend(recipe)),
                    [chat_messages(examples[i], data_cfg) for i, _ in mine],
                    sampling_params(recipe.generation),
                    recipe.generation.batch_size,
                    desc=desc,
                    show_progress=show_progress and state.is_local_main_process,
                )
            verdicts = verifier.verify([examples[i] for i, _ in mine], completions)
            records = [sample_record(i, j, examples[i], completion, verdict, recipe.verifier.pass_threshold)
                       for (i, j), completion, verdict in zip(mine, completions, verdicts, strict=True)]
    if state.num_processes > 1:
        from accelerate.utils import gather_object

        records = list({(r["problem_index"], r["sample_index"]): r for r in gather_object(records)}.values())
    return sorted(records, key=lambda r: (r["problem_index"], r["sample_index"]))


def sample_record(problem_index: int, sample_index: int, example: Example, completion, verdict,
                  pass_threshold: float) -> dict:
    """One evaluated sample as a record (see the module docstring)."""
    return {
        "problem_index": problem_index,
        "sample_index": sample_index,
        "prompt": example.prompt,
        "reference": example.reference,
        "completion": completion.text,
        "parsed": verdict.parsed,
        "score": verdict.score,
        "correct": verdict.score >= pass_threshold,
        "boxed": is_boxed_answer(completion.text),
        "finish_reason": completion.finish_reason,
        "length": completion.length,
        "columns": {k: v for k, v in example.columns.items() if _is_jsonable(v)},
    }


@contextmanager
def _seeded(seed: int, model):
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def summarise(
    records: Sequence[dict], recipe: Recipe, skipped_rows: int, seconds: float, source: str = ""
) -> EvalSummary:
    g = recipe.generation
    return EvalSummary(
        metrics=sample_metrics(records, recipe.eval.k),
        groups=group_metrics(records, recipe.eval.group_by, recipe.eval.k),
        problems=len({r["problem_index"] for r in records}),
        samples_per_prompt=recipe.eval.samples_per_prompt,
        skipped_rows=skipped_rows,
        seconds=round(seconds, 2),
        benchmark=recipe.eval.benchmark,
        source=source,
        settings={
            "model": recipe.model.name_or_path,
            "seed": recipe.run.seed,
            "temperature": g.temperature,
            "top_p": g.top_p,
            "max_new_tokens": g.max_new_tokens,
            "verifier": recipe.verifier.function,
        },
    )


def run_eval(recipe: Recipe, base_dir: Path, out_dir: Path, overwrite: bool = False) -> EvalSummary:
    start = time.time()
    inputs = checks.prepare_eval(recipe, base_dir)  # the checks rlsp validate makes too
    own_output_dir(out_dir, "eval")  # the folder takes writes now, not only after every sample is scored
    claim_output_dir(out_dir, ("eval_summary.json", "eval_samples.jsonl"), overwrite, "eval")
    data, verifier = inputs.data, inputs.verifier
    from accelerate import PartialState

    from rlsp.launch_setup import announce_setup

    # cpu=True on a CPU: accelerate then joins every launched process in a gloo group (without it,
    # under a DeepSpeed launch, each process would count itself alone).
    state = PartialState(cpu=pick_device(recipe.model.device).type == "cpu")
    announce_setup(state, "eval")
    precision = resolve_precision(recipe.model.precision, pick_device(recipe.model.device), training=False)
    if state.is_main_process:
        print(precision.describe())
    model, tokenizer = load_causal_lm(recipe.model.name_or_path, precision.weights, recipe.model.device)
    n = recipe.eval.samples_per_prompt
    desc = f"{recipe.eval.benchmark or 'eval'}" + (f" ({n} samples/problem)" if n > 1 else "")
    records = evaluate_model(model, tokenizer, recipe, data.examples, verifier, desc)
    summary = summarise(records, recipe, data.skipped, time.time() - start, data.source)
    summary.settings["precision"] = precision.summary()

    if PartialState().is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        if recipe.eval.write_samples:
            write_jsonl(out_dir / "eval_samples.jsonl", records)
        (out_dir / "eval_summary.json").write_text(json.dumps(asdict(summary), indent=2) + "\n")
    return summary


def write_jsonl(path: Path, records: Sequence[dict]) -> None:
    with path.open("w") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def _is_jsonable(value) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), list, dict))
