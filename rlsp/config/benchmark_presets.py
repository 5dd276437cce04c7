"""Named evaluation benchmarks: ``eval.benchmark: math500`` and the recipe values it implies.

A benchmark is a set of recipe *defaults*: where its file is, which columns hold the problem and
the answer, the prompt template, the verifier, the generation length and the breakdown columns.
They sit beneath the recipe: anything the recipe file or the command line sets wins, so
``eval.benchmark=math500 generation.max_new_tokens=4096`` works as one would expect.

The file is looked for as ``<folder>/<name>/test.jsonl`` in ``eval.data_dir``, else
``$RLSP_DATA_DIR``, else ``../shared/data`` beside the working directory or this repository.
Elsewhere, set ``data.source`` to your own copy or to the hub name listed here; the field
mapping is the same.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

from rlsp.errors import ConfigError, DataError, did_you_mean

COT_PROMPT = "{prompt}\nReason step by step and put the final answer in \\boxed{}."
DATA_DIR_ENV = "RLSP_DATA_DIR"


@dataclass(frozen=True)
class Benchmark:
    description: str
    defaults: dict  # recipe values, nested like a recipe file
    local_file: str | None = None  # under the data folder; None for the built-in task
    hub: str | None = None  # a datasets-hub name with the same columns
    hub_split: str = "test"
    hub_note: str = ""


BENCHMARKS: dict[str, Benchmark] = {
    "math500": Benchmark(
        "MATH-500: 500 competition problems (7 subjects, levels 1-5), answers checked by math equivalence",
        {
            "data": {"prompt_field": "problem", "reference_field": "answer", "reference_format": "plain",
                     "prompt_template": COT_PROMPT},
            "verifier": {"function": "math", "kwargs": {"answer_format": "boxed"}},
            "generation": {"max_new_tokens": 1024},
            "eval": {"group_by": ["subject", "level"]},
        },
        local_file="math500/test.jsonl",
        hub="HuggingFaceH4/MATH-500",
    ),
    "gsm8k": Benchmark(
        "GSM8K test: 1,319 grade-school word problems; the reference is the number after '####'",
        {
            "data": {"prompt_field": "question", "reference_field": "answer", "reference_format": "gsm8k",
                     "prompt_template": COT_PROMPT},
            "verifier": {"function": "numeric", "kwargs": {"answer_format": "boxed_or_last_number"}},
            "generation": {"max_new_tokens": 512},
        },
        local_file="gsm8k/test.jsonl",
        hub="openai/gsm8k",
        hub_note=" data.subset=main",
    ),
    "aime24": Benchmark(
        "AIME 2024: 30 problems with integer answers 0-999 ('025' == '25')",
        {
            "data": {"prompt_field": "problem", "reference_field": "answer", "reference_format": "plain",
                     "prompt_template": COT_PROMPT},
            "verifier": {"function": "numeric", "kwargs": {"answer_format": "boxed"}},
            "generation": {"max_new_tokens": 2048},
        },
        local_file="aime24/test.jsonl",
        hub="HuggingFaceH4/aime_2024",
        hub_split="train",
    ),
    "arith": Benchmark(
        "the built-in arithmetic task, held-out split, broken down by level",
        {
            "data": {"source": "builtin:arith", "split": "heldout",
                     "prompt_template": "{prompt} Put the final answer in \\boxed{}."},
            "verifier": {"function": "math", "kwargs": {"answer_format": "boxed_or_last_number"}},
            "generation": {"max_new_tokens": 128},
            "eval": {"group_by": ["level"]},
        },
    ),
}


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise ConfigError(
            f"eval.benchmark: unknown benchmark {name!r}.{did_you_mean(name, list(BENCHMARKS))} "
            f"Known benchmarks: {', '.join(BENCHMARKS)}; "
            f"for any other dataset leave eval.benchmark unset and map its columns in the data section."
        )
    return BENCHMARKS[name]


def with_benchmark_defaults(data: dict, base_dir: Path | None = None) -> dict:
    """``data`` (a recipe mapping) laid over the defaults of its ``eval.benchmark``, if it names one."""
    name = data.get("eval", {}).get("benchmark") if isinstance(data.get("eval"), dict) else None
    if not isinstance(name, str):
        return data  # none named, or not a string: the recipe's own validation reports that
    bench = get_benchmark(name)
    defaults = copy.deepcopy(bench.defaults)
    user_data = data.get("data") if isinstance(data.get("data"), dict) else {}
    user_source = user_data.get("source")
    builtin = defaults["data"].get("source")
    if user_source is None and bench.local_file is not None:
        found = find_benchmark_file(name, bench, data["eval"].get("data_dir"), base_dir)
        defaults["data"]["source"] = str(found)
    elif user_source is not None and user_source != builtin and (builtin or str(user_source).startswith("builtin:")):
        raise ConfigError(
            f"data.source={user_source!r} contradicts eval.benchmark={name!r}, which reads "
            f"{builtin or bench.local_file!r}. Drop one of the two."
        )
    return _merge(defaults, data)


def find_benchmark_file(name: str, bench: Benchmark, data_dir: str | None, base_dir: Path | None) -> Path:
    """The benchmark's local file, or a DataError saying where it looked and what else to pass."""
    if data_dir is not None:
        folders = [Path(data_dir).expanduser()]
        if base_dir is not None and not folders[0].is_absolute():
            folders.insert(0, base_dir / data_dir)
    elif os.environ.get(DATA_DIR_ENV):
        folders = [Path(os.environ[DATA_DIR_ENV]).expanduser()]
    else:
        repo = Path(__file__).resolve().parents[2]
        folders = [Path.cwd() / ".." / "shared" / "data", repo.parent / "shared" / "data"]
    candidates = list(dict.fromkeys(f.resolve() / bench.local_file for f in folders))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(repr(str(c)) for c in candidates)
    hub = ""
    if bench.hub:
        hub = f" or the hub copy with data.source={bench.hub} data.split={bench.hub_split}{bench.hub_note}"
    raise DataError(
        f"eval.benchmark={name!r}: benchmark file not found (looked at {looked}). Pass your copy with "
        f"data.source=/path/to/{bench.local_file}{hub}, or point eval.data_dir (or ${DATA_DIR_ENV}) at "
        f"the folder that holds {Path(bench.local_file).parent}/."
    )


def _merge(base: dict, over: dict) -> dict:
    """``over`` laid on ``base``, recursively for mappings; lists and values are replaced."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
