"""``rlsp eval RECIPE``: generate on a dataset, verify the answers, print accuracy."""

from __future__ import annotations

from pathlib import Path

from . import add_recipe_arguments

HELP = "Generate on a dataset, verify the answers, print accuracy."


def add_arguments(parser) -> None:
    add_recipe_arguments(parser)


def run(args) -> int:
    from ..config import load_recipe, output_dir
    from ..evaluate import run_eval

    recipe = load_recipe(args.recipe, args.overrides)
    out = output_dir(recipe, args.recipe)
    summary = run_eval(recipe, Path(args.recipe).resolve().parent, out)
    print(
        f"accuracy {summary.accuracy:.3f} ({round(summary.accuracy * summary.size)}/{summary.size}), "
        f"boxed {summary.boxed_rate:.3f}, truncated {summary.truncation_rate:.3f}, "
        f"mean length {summary.mean_length:.1f} tokens, {summary.seconds:.0f} s; results in {out}/"
    )
    return 0
