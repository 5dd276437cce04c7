"""``rlsp ablate``: the same RL recipe in several arms and seeds, then one comparison.

    rlsp ablate recipes/ablate_demo_length.yaml --set train.reward.alpha.start=1.0,0.8 \
        --sft recipes/sft_demo.yaml --sft-set sft.arith.size=48 sft.epochs=2 --seeds 0 1 2

Per seed: one SFT warm-start (``--sft``), then one RL run per arm from it. Then
``OUT/comparison/``: held-out accuracy, response length, behaviour rates and reward channels per
step, as a table, plots (mean and min-max band over seeds) and the ``rlsp inspect`` HTML report.
Every recipe is checked before the first run starts; running the command again resumes.
"""

from __future__ import annotations

from pathlib import Path

HELP = "Run arms of a recipe (--set KEY=V1,V2) over seeds from one SFT warm-start each; compare them."


def add_arguments(parser) -> None:
    parser.add_argument("recipe", nargs="?", help="The RL recipe (rlsp train) every arm runs.")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="Overrides every arm gets.")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=V1,V2",
                        help="The setting the arms differ in; repeat for every combination of several.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="Seeds per arm (default: 0).")
    parser.add_argument("--sft", metavar="RECIPE", help="SFT recipe warm-starting each seed (rlsp sft); the arms "
                        "train from it. Without it they start from the RL recipe's model.")
    parser.add_argument("--sft-set", nargs="+", default=[], metavar="KEY=VALUE", help="Overrides for the SFT recipe.")
    parser.add_argument("--out", help="Output folder (default: runs/ablate-<recipe name>).")
    parser.add_argument("--compare-only", action="store_true", help="Write the comparison of the runs finished so far.")


def plan_from(args):
    from rlsp.ablation.arms import AblationPlan, parse_arms

    recipe = Path(args.recipe)
    out = Path(args.out) if args.out else Path("runs") / f"ablate-{recipe.stem}"
    return AblationPlan(recipe, out, parse_arms(args.sets), tuple(dict.fromkeys(args.seeds)),
                        tuple(args.overrides), Path(args.sft) if args.sft else None, tuple(args.sft_set))


def check_plan(plan) -> None:
    """Every recipe of every run, with its overrides, passes ``rlsp validate`` before anything runs."""
    from rlsp.ablation.arms import check_own_settings
    from rlsp.commands.sft import check_written_for_sft
    from rlsp.commands.validate import validate_recipe
    from rlsp.config import load_recipe
    from rlsp.output_folder import check_output_dir

    check_output_dir(plan.out_dir)
    check_own_settings(plan)
    for seed in plan.seeds:
        if plan.sft_recipe:
            sft = load_recipe(plan.sft_recipe, plan.sft_command_overrides(seed))
            check_written_for_sft(sft, plan.sft_recipe, plan.sft_overrides)
            validate_recipe(sft, plan.sft_recipe.resolve().parent, "sft")
    for run in plan.runs:
        # The warm-start does not exist yet: check the arm with the recipe's own model.
        overrides = [o for o in plan.train_overrides(run) if not o.startswith("model.name_or_path=")]
        validate_recipe(load_recipe(plan.recipe, overrides), plan.recipe.resolve().parent, "train")


def run(args) -> int:
    from rlsp.ablation.runner import run_all
    from rlsp.errors import ConfigError
    from rlsp.launch_env import launched_world_size

    if launched_world_size() > 1:
        raise ConfigError("rlsp ablate starts each run as its own process; run it directly, not under a launcher.")
    plan = plan_from(args)
    check_plan(plan)
    print(f"rlsp ablate: {len(plan.arms)} arms ({', '.join(a.name for a in plan.arms)}) x {len(plan.seeds)} "
          f"seed(s) -> {plan.out_dir}/")
    if not args.compare_only:
        run_all(plan)
    # Imported after the runs: the long part never waits on the plotting imports.
    from rlsp.ablation.comparison import compare

    compare(plan)
    return 0


def interrupted(args) -> str:
    return "Finished runs are kept and a stopped RL run resumes from its latest checkpoint: run the same command again."
