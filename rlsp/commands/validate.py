"""``rlsp validate RECIPE``: check a recipe (fields, values, data file, reward names) cheaply."""

from __future__ import annotations

from pathlib import Path

from rlsp.commands import add_recipe_arguments

HELP = "Check a recipe (fields, values, data file, verifier) without running it."


def add_arguments(parser) -> None:
    add_recipe_arguments(parser)
    parser.add_argument("--explain", action="store_true", help="Also print every field with its help text.")


def run(args) -> int:
    import yaml

    from rlsp.config import load_recipe
    from rlsp.config.explain import explain, recipe_as_dict
    from rlsp.data import check_source
    from rlsp.scoring.verifier import build_verifier

    recipe = load_recipe(args.recipe, args.overrides)
    base_dir = Path(args.recipe).resolve().parent
    check_source(recipe.data, base_dir)
    build_verifier(recipe.verifier, base_dir)
    if recipe.rewards:  # a training recipe: the checks `rlsp train` makes before loading a model
        from rlsp.scoring.channels import build_reward_functions
        from rlsp.training.preflight import check_training_recipe

        check_training_recipe(recipe)
        build_reward_functions(recipe.rewards, base_dir)
    print(yaml.safe_dump(recipe_as_dict(recipe), sort_keys=False).rstrip())
    if args.explain:
        print("\n" + explain(type(recipe)))
    print(f"\nOK: {args.recipe} is a valid recipe.")
    return 0
