"""``rlsp eval``: generate on a dataset, verify every answer, report accuracy.

Order matters for users: everything cheap that can fail (recipe, data file, rows, verifier
reference) is checked before the model is loaded. Under ``accelerate launch`` each process takes
a slice of the prompts and the main process gathers and writes the results.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .config import Recipe
from .data import Example, load_examples
from .data.prompts import chat_messages
from .generation import Completion, HFBackend, SamplingParams, generate_all
from .models import load_causal_lm
from .verification import build_verifier, is_boxed_answer


@dataclass(frozen=True)
class EvalSummary:
    accuracy: float  # fraction of samples whose verifier score reaches the pass threshold
    boxed_rate: float  # fraction of answers with a non-empty \boxed{}
    truncation_rate: float  # fraction that hit max_new_tokens
    mean_length: float  # tokens per answer
    size: int
    skipped_rows: int
    seconds: float


def sampling_params(recipe: Recipe) -> SamplingParams:
    g = recipe.generation
    return SamplingParams(temperature=g.temperature, top_p=g.top_p, max_new_tokens=g.max_new_tokens)


def evaluate_model(model, tokenizer, recipe: Recipe, examples: list[Example], verifier, desc: str = "eval"):
    """Generate for ``examples`` with ``model`` and verify; returns (records, summary fields)."""
    from accelerate import PartialState

    state = PartialState()
    backend = HFBackend(model, tokenizer)
    indices = list(range(len(examples)))
    with state.split_between_processes(indices) as mine:
        conversations = [chat_messages(examples[i], recipe.data) for i in mine]
        completions = generate_all(
            backend, conversations, sampling_params(recipe), recipe.generation.batch_size,
            desc=desc, show_progress=state.is_local_main_process,
        )
        local = list(zip(mine, completions))
    if state.num_processes > 1:
        from accelerate.utils import gather_object

        local = gather_object(local)
    local.sort(key=lambda pair: pair[0])
    ordered: list[Completion] = [c for _, c in local]
    verdicts = verifier.verify(examples, ordered)
    records = []
    for i, (example, completion, verdict) in enumerate(zip(examples, ordered, verdicts)):
        records.append(
            {
                "index": i,
                "prompt": example.prompt,
                "completion": completion.text,
                "reference": example.reference,
                "parsed": verdict.parsed,
                "score": verdict.score,
                "correct": verdict.score >= recipe.verifier.pass_threshold,
                "boxed": is_boxed_answer(completion.text),
                "finish_reason": completion.finish_reason,
                "length": completion.length,
                **{k: v for k, v in example.columns.items() if _is_jsonable(v)},
            }
        )
    return records


def summarise(records: list[dict], skipped_rows: int, seconds: float) -> EvalSummary:
    n = len(records)
    return EvalSummary(
        accuracy=sum(r["correct"] for r in records) / n,
        boxed_rate=sum(r["boxed"] for r in records) / n,
        truncation_rate=sum(r["finish_reason"] == "length" for r in records) / n,
        mean_length=sum(r["length"] for r in records) / n,
        size=n,
        skipped_rows=skipped_rows,
        seconds=round(seconds, 2),
    )


def run_eval(recipe: Recipe, base_dir: Path, out_dir: Path) -> EvalSummary:
    start = time.time()
    torch.manual_seed(recipe.run.seed)
    data = load_examples(recipe.data, recipe.run.seed, base_dir)
    verifier = build_verifier(recipe.verifier, base_dir)
    model, tokenizer = load_causal_lm(recipe.model.name_or_path, recipe.model.dtype, recipe.model.device)
    records = evaluate_model(model, tokenizer, recipe, data.examples, verifier)
    summary = summarise(records, data.skipped, time.time() - start)
    from accelerate import PartialState

    if PartialState().is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        if recipe.eval.write_samples:
            write_jsonl(out_dir / "eval_samples.jsonl", records)
        (out_dir / "eval_summary.json").write_text(json.dumps(asdict(summary), indent=2) + "\n")
    return summary


def write_jsonl(path: Path, records: list[dict]) -> None:
    with path.open("w") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def _is_jsonable(value) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), list, dict))
