"""``rlsp validate RECIPE``: every check ``eval``, ``sft`` or ``train`` makes before loading a model.

Which command's checks run: ``--for``, else the recipe's own shape (rewards: ``train``; an
``sft:`` section: ``sft``; a ``steer:`` section: ``steer extract``; otherwise ``eval``).
Nothing here loads a model or reads a dataset's rows, so it takes a second.
"""

from __future__ import annotations

from pathlib import Path

from rlsp.commands import add_recipe_arguments

HELP = "Check a recipe (fields, values, data files, verifier, rewards, hooks) without running it."
COMMANDS = ("train", "sft", "eval", "steer")


def add_arguments(parser) -> None:
    add_recipe_arguments(parser)
    parser.add_argument("--for", dest="for_command", choices=COMMANDS,
                        help="The command the recipe is for; default: train if it has rewards, sft if it has an "
                        "sft section, steer (extract) if it has a steer section, else eval.")
    parser.add_argument("--explain", action="store_true", help="Also print every field with its help text.")


def command_of(recipe, sections: set[str]) -> str:
    """The command a recipe is written for, from what it sets."""
    if recipe.rewards:
        return "train"
    if "sft" in sections:
        return "sft"
    return "steer" if "steer" in sections else "eval"


def validate_recipe(recipe, base_dir: Path, command: str) -> None:
    """Raise the first ``RlspError`` that ``rlsp <command>`` would raise before loading a model."""
    from rlsp.data import check_source
    from rlsp.eval.checks import check_eval_settings
    from rlsp.hooks import build_hooks
    from rlsp.scoring.verifier import build_verifier
    from rlsp.sft.dataset import check_sft_source

    if command == "sft":
        check_sft_source(recipe, base_dir)
    elif command == "steer":
        from rlsp.steering.extract import check_steer_recipe

        check_steer_recipe(recipe, base_dir)
    else:
        check_source(recipe.data, base_dir)
        build_verifier(recipe.verifier, base_dir)
    if command == "eval":
        check_eval_settings(recipe)
    if command == "train":
        from rlsp.scoring.channels import build_reward_functions
        from rlsp.training.preflight import check_training_recipe, heldout_config

        check_training_recipe(recipe)
        check_source(heldout_config(recipe), base_dir)
        build_reward_functions(recipe.rewards, base_dir)
    if command in ("train", "sft"):
        build_hooks(recipe.hooks, base_dir)


def run(args) -> int:
    import yaml

    from rlsp.config import load_recipe
    from rlsp.config.explain import explain, recipe_as_dict
    from rlsp.config.loading import read_yaml_mapping

    recipe = load_recipe(args.recipe, args.overrides)
    command = args.for_command or command_of(recipe, set(read_yaml_mapping(Path(args.recipe))))
    validate_recipe(recipe, Path(args.recipe).resolve().parent, command)
    print(yaml.safe_dump(recipe_as_dict(recipe), sort_keys=False).rstrip())
    if args.explain:
        print("\n" + explain(type(recipe)))
    print(f"\nOK: {args.recipe} is a valid recipe for rlsp {command}.")
    return 0
