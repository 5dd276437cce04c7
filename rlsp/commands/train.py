"""``rlsp train RECIPE [--resume]``: RLSP PPO training (also under ``accelerate launch``)."""

from __future__ import annotations

from rlsp.commands import add_recipe_arguments

HELP = "Train with PPO on separate verifier and exploration rewards (RLSP)."


def add_arguments(parser) -> None:
    add_recipe_arguments(parser)
    parser.add_argument("--resume", action="store_true", help="Continue from the latest checkpoint in run.output_dir.")
    parser.add_argument("--overwrite", action="store_true", help="Replace an earlier run's outputs in run.output_dir.")


def run(args) -> int:
    from rlsp.config import load_recipe
    from rlsp.launch_setup import check_launch
    from rlsp.training.ppo_trainer import Trainer

    check_launch("train")
    recipe = load_recipe(args.recipe, args.overrides)
    trainer = Trainer(recipe, args.recipe, resume=args.resume, overwrite=args.overwrite)
    summary = trainer.fit()
    if not trainer.models.dist.is_main_process:
        return 0
    print(
        f"held-out accuracy {summary['heldout_accuracy_before']:.3f} -> {summary['heldout_accuracy_after']:.3f} "
        f"({summary['heldout_size']} problems), {summary['steps']} steps in {summary['wall_seconds']:.0f} s; "
        f"run in {trainer.run_dir}/ (tensorboard --logdir {trainer.run_dir}/tensorboard)"
    )
    return 0


def interrupted(args) -> str:
    """Where a stopped run stands: its latest checkpoint and the command that continues it."""
    from rlsp.config import load_recipe, output_dir
    from rlsp.training.checkpoint import resumable_checkpoint

    try:
        run_dir = output_dir(load_recipe(args.recipe, args.overrides), args.recipe)
    except Exception:  # noqa: BLE001 -- the recipe was read once already; say less rather than fail again
        return ""
    latest = resumable_checkpoint(run_dir)[0]
    again = " ".join(["rlsp train", str(args.recipe), *args.overrides])
    if latest is None:
        return (f"No checkpoint was saved in {run_dir} (train.checkpoint_every sets how often); start again with "
                f"{again} --overwrite")
    return (f"The latest checkpoint is {latest}; rollouts and TensorBoard are cut back to it on resume. "
            f"Continue with: {again} --resume")
