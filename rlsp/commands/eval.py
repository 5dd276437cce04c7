"""``rlsp eval``: sample answers on a benchmark or dataset, verify them, report pass@k and maj@k.

    rlsp eval RECIPE [section.key=value ...]
    rlsp eval --benchmark math500 --model DIR --n 4 --k 1,4 --temperature 0.7 [section.key=value ...]
    rlsp eval --compare RUN_A RUN_B [--plot out.png]

Every flag but --compare and --plot is a shortcut for a recipe field (shown in its help), so
anything the command line can say, a recipe can say too.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlsp.config.benchmark_presets import BENCHMARKS
from rlsp.errors import ConfigError

HELP = "Sample answers on a benchmark or dataset, verify them, report pass@k and maj@k; or compare two runs."

# flag destination -> recipe field it stands for
SHORTCUTS = {
    "benchmark": "eval.benchmark",
    "model": "model.name_or_path",
    "n": "eval.samples_per_prompt",
    "k": "eval.k",
    "temperature": "generation.temperature",
    "max_new_tokens": "generation.max_new_tokens",
    "limit": "data.limit",
    "seed": "run.seed",
    "output_dir": "run.output_dir",
}


def add_arguments(parser) -> None:
    parser.add_argument(
        "args", nargs="*", metavar="RECIPE | section.key=value",
        help="A recipe YAML file first (optional with --benchmark), then overrides such as "
        "generation.temperature=0.7.",
    )
    short = parser.add_argument_group("shortcuts for recipe fields (applied before the overrides)")
    names = ", ".join(f"{name} ({b.description})" for name, b in BENCHMARKS.items())
    short.add_argument("--benchmark", metavar="NAME", help=f"eval.benchmark: {names}.")
    short.add_argument("--model", metavar="NAME_OR_PATH",
                       help="model.name_or_path: a local directory, hub id or alias.")
    short.add_argument("--n", type=int, help="eval.samples_per_prompt: samples per problem.")
    short.add_argument("--k", type=_k_list, help="eval.k: comma-separated k values for pass@k and maj@k, e.g. 1,4.")
    short.add_argument("--temperature", type=float, help="generation.temperature (0: greedy).")
    short.add_argument("--max-new-tokens", type=int, help="generation.max_new_tokens.")
    short.add_argument("--limit", type=int, help="data.limit: evaluate the first N problems.")
    short.add_argument("--seed", type=int, help="run.seed.")
    short.add_argument("--output-dir", metavar="DIR", help="run.output_dir.")
    parser.add_argument("--overwrite", action="store_true", help="Replace an earlier evaluation in run.output_dir.")
    compare = parser.add_argument_group("comparing two runs")
    compare.add_argument(
        "--compare", nargs=2, metavar=("A", "B"),
        help="Print metrics of two eval output directories (or eval_summary.json files) with deltas.",
    )
    compare.add_argument("--plot", metavar="PNG", help="With --compare: also save a bar chart to this file.")


def run(args) -> int:
    if args.compare:
        return _compare(args)
    if args.plot:
        raise ConfigError("--plot goes with --compare A B.")
    from accelerate import PartialState

    from rlsp.config import load_recipe, output_dir
    from rlsp.eval.run import run_eval
    from rlsp.launch_setup import check_launch

    check_launch("eval")
    recipe_path, overrides = _split_positionals(args.args)
    flags = [f"{SHORTCUTS[dest]}={json.dumps(value)}" for dest, value in _given_shortcuts(args)]
    if recipe_path is None and args.benchmark is None and not any(
        o.startswith(("eval.benchmark=", "data.source=")) for o in overrides
    ):
        raise ConfigError("give a recipe file (see recipes/) or a benchmark: rlsp eval --benchmark math500 ...")
    recipe = load_recipe(recipe_path, flags + overrides)
    name = recipe_path or f"eval_{recipe.eval.benchmark or 'data'}"
    out = output_dir(recipe, name)
    base_dir = Path(recipe_path).resolve().parent if recipe_path else Path.cwd()
    summary = run_eval(recipe, base_dir, out, overwrite=args.overwrite)
    if PartialState().is_main_process:
        print(format_summary(summary, out))
    return 0


def format_summary(summary, out: Path) -> str:
    m = summary.metrics
    n = summary.samples_per_prompt
    head = f"{summary.benchmark or summary.source}: {summary.problems} problems x {n} sample{'s' * (n != 1)}"
    if summary.skipped_rows:
        head += f"; skipped {summary.skipped_rows} malformed or incomplete rows (data.on_bad_row=skip)"
    rates = [f"{name} {value:.3f}" for name, value in m.items() if name != "mean_length"]
    lines = [head, "  " + ", ".join(rates) + f", mean length {m['mean_length']:.1f} tokens"]
    for column, values in summary.groups.items():
        parts = [f"{value} {g['accuracy']:.3f} ({g['problems']})" for value, g in values.items()]
        lines.append(f"  accuracy by {column}: " + ", ".join(parts))
    lines.append(f"{summary.seconds:.0f} s; results in {out}/")
    return "\n".join(lines)


def _compare(args) -> int:
    from rlsp.eval.compare import format_comparison, label_for, load_summary, plot_comparison

    stray = args.args or [f"--{dest.replace('_', '-')}" for dest, _ in _given_shortcuts(args)]
    if stray:
        raise ConfigError(f"--compare takes only two runs (and --plot); got also {' '.join(stray)}.")
    a, b = (load_summary(p) for p in args.compare)
    label_a, label_b = (label_for(p) for p in args.compare)
    if label_a == label_b:
        label_a, label_b = "A", "B"
    print(format_comparison(a, b, label_a, label_b))
    if args.plot:
        plot_comparison(a, b, args.plot, label_a, label_b)
        print(f"plot saved to {args.plot}")
    return 0


def _split_positionals(items: list[str]) -> tuple[str | None, list[str]]:
    """The recipe file (the first item, if it is not an override) and the overrides."""
    recipe = items[0] if items and "=" not in items[0] else None
    overrides = items[1:] if recipe is not None else items
    stray = [item for item in overrides if "=" not in item]
    if stray:
        raise ConfigError(
            f"{stray[0]!r} is neither the recipe (which comes first) nor an override of the form section.key=value."
        )
    return recipe, overrides


def _given_shortcuts(args) -> list[tuple[str, object]]:
    return [(dest, getattr(args, dest)) for dest in SHORTCUTS if getattr(args, dest) is not None]


def _k_list(text: str) -> list[int]:
    import argparse

    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1,4; got {text!r}") from None


def interrupted(args) -> str:
    return "Nothing was written: rlsp eval writes eval_samples.jsonl and eval_summary.json once every answer is scored."
