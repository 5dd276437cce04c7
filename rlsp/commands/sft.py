"""``rlsp sft RECIPE``: warm-start a model on long chains of thought (full fine-tuning or LoRA)."""

from __future__ import annotations

from pathlib import Path

from rlsp.commands import add_recipe_arguments

HELP = "Supervised warm-start on long chains of thought (loss on the assistant turn only)."


def add_arguments(parser) -> None:
    add_recipe_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="Replace a model saved earlier in run.output_dir.")


def run(args) -> int:
    from accelerate import PartialState

    from rlsp.config import load_recipe, output_dir
    from rlsp.launch_setup import check_launch
    from rlsp.sft.warm_start import run_sft

    check_launch("sft")
    recipe = load_recipe(args.recipe, args.overrides)
    check_written_for_sft(recipe, Path(args.recipe), args.overrides)
    out = output_dir(recipe, args.recipe)
    result = run_sft(recipe, Path(args.recipe).resolve().parent, out, overwrite=args.overwrite)
    if not PartialState().is_main_process:
        return 0
    losses = (
        f"loss {result.first_loss:.3f} -> {result.last_loss:.3f}"
        if result.first_loss is not None
        else "no loss logged"
    )
    print(
        f"sft: {result.examples} examples, {result.steps} steps in {result.seconds:.0f} s, {losses}; "
        f"{result.saved} model saved in {out}/ (use it as model.name_or_path={out})"
    )
    return 0


def check_written_for_sft(recipe, path: Path, overrides) -> None:
    """Refuse a recipe written for another command (rewards: for rlsp train, steer: for rlsp steer
    extract) that sets nothing of SFT: rlsp sft would quietly warm-start on its defaults, 200
    built-in arithmetic traces for 3 epochs, instead. rlsp ablate --sft checks its recipe here too."""
    from rlsp.config.loading import read_yaml_mapping
    from rlsp.errors import ConfigError

    sections = set(read_yaml_mapping(path)) | {o.partition("=")[0].split(".")[0] for o in overrides}
    if "sft" in sections:
        return
    if recipe.rewards:
        raise ConfigError(f"{path}: rewards: this recipe is for rlsp train (it has rewards and no sft: section); "
                          "rlsp sft would warm-start on the default built-in traces instead. Run it with rlsp train, "
                          "or add an sft: section to warm-start with it.")
    if "steer" in sections:
        raise ConfigError(f"{path}: steer: this recipe is for rlsp steer extract (it has a steer: section and no "
                          "sft: section); rlsp sft would warm-start on the default built-in traces instead. Run it "
                          "with rlsp steer extract, or add an sft: section to warm-start with it.")


def interrupted(args) -> str:
    return ("rlsp sft saves the model when training ends, so none was saved; run the same command again "
            "(checkpoints that sft.save_steps wrote stay in run.output_dir).")
