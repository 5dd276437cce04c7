"""The ``rlsp`` command line: ``rlsp validate``, ``rlsp eval`` (also ``python -m rlsp``).

Works the same under ``accelerate launch -m rlsp ...``. Problems with the user's input are
``RlspError``s: printed as one short message, no traceback, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import RlspError


def _add_recipe_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="Path to a recipe YAML file (see recipes/).")
    parser.add_argument(
        "overrides", nargs="*", metavar="section.key=value",
        help="Override recipe values, e.g. generation.temperature=0.7 data.limit=50.",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlsp", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="Check a recipe (fields, values, data file) without running it.")
    _add_recipe_args(validate)
    validate.add_argument("--explain", action="store_true", help="Also print every field with its help text.")

    evaluate = commands.add_parser("eval", help="Generate on a dataset, verify the answers, print accuracy.")
    _add_recipe_args(evaluate)
    return parser


def cmd_validate(args) -> int:
    import yaml

    from .config import load_recipe
    from .config.explain import explain, recipe_as_dict
    from .data import check_source
    from .verification import build_verifier

    recipe = load_recipe(args.recipe, args.overrides)
    base_dir = Path(args.recipe).resolve().parent
    check_source(recipe.data, base_dir)
    build_verifier(recipe.verifier, base_dir)
    print(yaml.safe_dump(recipe_as_dict(recipe), sort_keys=False).rstrip())
    if args.explain:
        print("\n" + explain(type(recipe)))
    print(f"\nOK: {args.recipe} is a valid recipe.")
    return 0


def cmd_eval(args) -> int:
    from .config import load_recipe, output_dir
    from .evaluate import run_eval

    recipe = load_recipe(args.recipe, args.overrides)
    out = output_dir(recipe, args.recipe)
    summary = run_eval(recipe, Path(args.recipe).resolve().parent, out)
    print(
        f"accuracy {summary.accuracy:.3f} ({round(summary.accuracy * summary.size)}/{summary.size}), "
        f"boxed {summary.boxed_rate:.3f}, truncated {summary.truncation_rate:.3f}, "
        f"mean length {summary.mean_length:.1f} tokens, {summary.seconds:.0f} s; results in {out}/"
    )
    return 0


COMMANDS = {"validate": cmd_validate, "eval": cmd_eval}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except RlspError as e:
        print(f"rlsp {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
