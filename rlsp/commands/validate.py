"""``rlsp validate RECIPE``: every check ``eval``, ``sft`` or ``train`` makes before loading a model.

Which command's checks run: ``--for``, else the recipe's own shape (rewards: ``train``; an
``sft:`` section: ``sft``; a ``steer:`` section: ``steer extract``; otherwise ``eval``).
Nothing here loads a model's weights or downloads anything; local data files are read row by
row as the command would, and the model's config is read where it is local or cached.
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
    """Raise the first ``RlspError`` that ``rlsp <command>`` would raise before loading a model: the
    same preflight function the command calls (``fetch=False``: local files are read, hub datasets
    and uncached hub models are not downloaded)."""
    if command == "train":
        from rlsp.training.preflight import prepare_training

        prepare_training(recipe, base_dir, fetch=False)
    elif command == "eval":
        from rlsp.eval.checks import prepare_eval

        prepare_eval(recipe, base_dir, fetch=False)
    elif command == "sft":
        from rlsp.sft.warm_start import prepare_sft

        prepare_sft(recipe, base_dir, fetch=False)
    else:
        from rlsp.modeling.causal_lm import model_config
        from rlsp.steering.extract import check_steer_recipe

        check_steer_recipe(recipe, base_dir)
        model_config(recipe.model.name_or_path, local_only=True)  # rlsp steer extract reads it before loading


def run(args) -> int:
    import yaml

    from rlsp.config import load_recipe, output_dir
    from rlsp.config.explain import explain, recipe_as_dict
    from rlsp.config.loading import read_yaml_mapping
    from rlsp.output_folder import check_output_dir

    recipe = load_recipe(args.recipe, args.overrides)
    command = args.for_command or command_of(recipe, set(read_yaml_mapping(Path(args.recipe))))
    if command == "sft":
        from rlsp.commands.sft import check_written_for_sft

        check_written_for_sft(recipe, Path(args.recipe), args.overrides)  # as rlsp sft checks first
    validate_recipe(recipe, Path(args.recipe).resolve().parent, command)
    check_output_dir(output_dir(recipe, args.recipe))
    print(yaml.safe_dump(recipe_as_dict(recipe), sort_keys=False).rstrip())
    if args.explain:
        print("\n" + explain(type(recipe)))
    print(f"\nOK: {args.recipe} is a valid recipe for rlsp {command}.")
    return 0
