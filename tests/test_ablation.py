"""`rlsp ablate`: arms from --set, the run layout, resuming, the comparison's numbers, and the
real CLI end to end on the tiny model (SFT warm-start, two arms, then the comparison)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_training import make_recipe

from rlsp.ablation.arms import AblationPlan, parse_arms
from rlsp.ablation.comparison import compare
from rlsp.ablation.run_results import load_results, per_step
from rlsp.ablation.runner import train_flags
from rlsp.errors import ConfigError

ALPHA = "train.reward.alpha.start"


def test_arms_are_every_combination_of_the_set_values():
    arms = parse_arms([f"{ALPHA}=1.0,0.8", "train.kl.coef=0.05,0"])
    assert [a.name for a in arms] == ["alpha.start=1.0 kl.coef=0.05", "alpha.start=1.0 kl.coef=0",
                                      "alpha.start=0.8 kl.coef=0.05", "alpha.start=0.8 kl.coef=0"]
    assert arms[1].overrides == (f"{ALPHA}=1.0", "train.kl.coef=0")


@pytest.mark.parametrize("sets, message", [
    ([], "give the setting the arms differ in"),
    ([f"{ALPHA}1.0,0.8"], "write KEY=VALUE1,VALUE2"),
    ([f"{ALPHA}=1.0,"], "none empty"),
    ([f"{ALPHA}=1.0"], "that is one arm"),
    ([f"{ALPHA}=1.0,1.0"], "a value is repeated"),
])
def test_bad_sets_are_refused(sets, message):
    with pytest.raises(ConfigError, match=message):
        parse_arms(sets)


def test_runs_are_laid_out_per_seed_and_start_from_that_seeds_warm_start(tmp_path):
    plan = AblationPlan(Path("r.yaml"), tmp_path, parse_arms([f"{ALPHA}=1.0,0.8"]), (0, 1), ("train.steps=3",),
                        Path("sft.yaml"), ("sft.epochs=2",))
    assert [(r.seed, r.run_dir.relative_to(tmp_path).as_posix()) for r in plan.runs] == [
        (0, "seed0/alpha.start=1.0"), (0, "seed0/alpha.start=0.8"),
        (1, "seed1/alpha.start=1.0"), (1, "seed1/alpha.start=0.8")]
    run = plan.runs[3]
    assert plan.train_overrides(run) == ["train.steps=3", f"{ALPHA}=0.8", f"model.name_or_path={tmp_path}/seed1/sft",
                                         "run.seed=1", f"run.output_dir={tmp_path}/seed1/alpha.start=0.8"]
    assert plan.sft_command_overrides(1) == ["sft.epochs=2", "run.seed=1", f"run.output_dir={tmp_path}/seed1/sft"]


def test_a_stopped_run_resumes_from_its_checkpoint_or_starts_again(tmp_path):
    run_dir = tmp_path / "run"
    assert train_flags(run_dir) == []
    (run_dir / "tensorboard").mkdir(parents=True)
    assert train_flags(run_dir) == ["--overwrite"]  # stopped before its first checkpoint
    (run_dir / "checkpoints" / "step-000005").mkdir(parents=True)
    (run_dir / "checkpoints" / "step-000005" / "trainer_state.json").write_text("{}")
    assert train_flags(run_dir) == ["--resume"]


def _rollout(step: int, length: int, backtracks: bool, correct: bool) -> dict:
    text = "The sum is 4. Wait, that is wrong. It is 5. \\boxed{5}" if backtracks else "The sum is 5. \\boxed{5}"
    return {"schema_version": 1, "step": step, "prompt": "2+3?", "completion": text, "reference": "5",
            "rewards": {"verifier": float(correct), "exploration": -1000.0 / length}, "correct": correct,
            "length": length, "finish_reason": "stop", "group": 0}


def fake_ablation(tmp_path: Path) -> AblationPlan:
    """Two arms x two seeds, 4 steps of 2 samples. Arm 1.0: length 10 (seed 0) or 20 (seed 1), no
    backtracking. Arm 0.8: length 10*step (seed 0) or 30*step (seed 1), backtracking from step 3."""
    plan = AblationPlan(Path("r.yaml"), tmp_path / "abl", parse_arms([f"{ALPHA}=1.0,0.8"]), (0, 1))
    after = {("alpha.start=1.0", 0): 0.5, ("alpha.start=1.0", 1): 0.6, ("alpha.start=0.8", 0): 0.7,
             ("alpha.start=0.8", 1): 0.9}
    for run in plan.runs:
        run.run_dir.mkdir(parents=True)
        explore = run.arm.name == "alpha.start=0.8"
        lines = []
        for step in range(1, 5):
            length = (10 if run.seed == 0 else 30) * step if explore else (10 if run.seed == 0 else 20)
            lines += [_rollout(step, length, explore and step >= 3, correct=i == 0) for i in range(2)]
        (run.run_dir / "rollouts.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        (run.run_dir / "summary.json").write_text(json.dumps(
            {"heldout_accuracy_before": 0.5, "heldout_accuracy_after": after[(run.arm.name, run.seed)]}))
    return plan


def test_per_step_curves_are_mean_min_max_over_seeds(tmp_path):
    results = load_results(fake_ablation(tmp_path))
    explore = per_step(results, "alpha.start=0.8")
    assert explore["length_mean"][4] == (80.0, 40.0, 120.0, 2)  # (40 + 120) / 2
    assert explore["backtracking_share"][2][0] == 0.0 and explore["backtracking_share"][3][0] == 1.0
    # One backtracking sentence in a 40-token (seed 0) or 120-token (seed 1) completion at step 4.
    assert explore["backtracking_per_1k"][4][1:3] == pytest.approx((1000 / 120, 1000 / 40))
    assert explore["sampled_accuracy"][1] == (0.5, 0.5, 0.5, 2)
    outcome = per_step(results, "alpha.start=1.0")
    assert outcome["reward_exploration"][1] == pytest.approx((-75.0, -100.0, -50.0, 2))  # -1000/10, -1000/20
    seed0 = next(r for r in results if r.arm == "alpha.start=0.8" and r.seed == 0)
    assert seed0.window("length_mean", last=False) == 15.0  # steps 1-2 of 4: (10 + 20) / 2
    assert seed0.window("length_mean", last=True) == 35.0  # steps 3-4


def test_comparison_writes_table_plot_and_report(tmp_path):
    plan = fake_ablation(tmp_path)
    comparison = compare(plan)
    out = plan.out_dir / "comparison"
    data = json.loads((out / "comparison.json").read_text())
    explore = next(a for a in data["arms"] if a["arm"] == "alpha.start=0.8")
    assert explore["heldout_accuracy_after"] == pytest.approx([0.8, 0.7, 0.9, 2])
    assert explore["length_mean_last"] == pytest.approx([(35 + 105) / 2, 35, 105, 2])
    table = (out / "summary.md").read_text()
    assert "| measure | alpha.start=1.0 (seeds 0, 1) | alpha.start=0.8 (seeds 0, 1) |" in table
    assert "| held-out acc. after RL | 0.550 [0.500, 0.600] | 0.800 [0.700, 0.900] |" in table
    assert "| length (tokens), last steps | 15.0 [10.0, 20.0] | 70.0 [35.0, 105.0] |" in table
    with (out / "per_step.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and rows[0]["arm"] == "alpha.start=1.0" and rows[0]["seeds"] == "2"
    assert (out / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "inspect" / "report.html").read_text()
    assert "alpha.start=0.8 (seed 0)" in report and "alpha.start=1.0 (seed 0)" in report
    assert len(comparison.results) == 4


def test_a_run_still_going_is_compared_with_its_steps_so_far(tmp_path):
    plan = fake_ablation(tmp_path)
    (plan.runs[3].run_dir / "summary.json").unlink()
    compare(plan)
    assert "alpha.start=0.8 seed 1 (4 steps so far)" in (plan.out_dir / "comparison" / "summary.md").read_text()
    data = json.loads((plan.out_dir / "comparison" / "comparison.json").read_text())
    arm = next(a for a in data["arms"] if a["arm"] == "alpha.start=0.8")
    assert arm["heldout_accuracy_after"] == [0.7, 0.7, 0.7, 1]


def _ablate(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "rlsp", "ablate", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def test_cli_runs_sft_then_both_arms_then_compares_and_resumes(tmp_path, tiny_model_dir):
    from test_sft_train import RECIPE as SFT_RECIPE

    recipe, _ = make_recipe(tmp_path, tiny_model_dir)
    sft = tmp_path / "sft.yaml"
    sft.write_text(SFT_RECIPE)
    out = tmp_path / "abl"
    args = [recipe, f"--set={ALPHA}=1.0,0.8", "--sft", sft, "--sft-set", f"model.name_or_path={tiny_model_dir}",
            "sft.max_steps=1", "--out", out, "train.steps=2", "train.advantage_estimator=rloo",
            "train.samples_per_prompt=2", "train.kl.placement=loss"]
    done = _ablate(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "seed0" / "sft" / "sft_summary.json").exists()
    for arm in ("alpha.start=1.0", "alpha.start=0.8"):
        summary = json.loads((out / "seed0" / arm / "summary.json").read_text())
        assert summary["steps"] == 2
        assert summary["model"] == str(out / "seed0" / "sft")  # each arm trains from the seed's warm-start
    trained = {arm: json.loads((out / "seed0" / arm / "rollouts.jsonl").read_text().splitlines()[0])
               for arm in ("alpha.start=1.0", "alpha.start=0.8")}
    assert trained["alpha.start=1.0"]["prompt"] == trained["alpha.start=0.8"]["prompt"]  # same seed, same data
    assert "Ablation: mean over seeds" in done.stdout
    assert {p.name for p in (out / "comparison").iterdir()} >= {"per_step.csv", "runs.csv", "summary.md",
                                                                "comparison.json", "ablation.png", "inspect"}
    again = _ablate(*args)  # everything finished: nothing is run twice, the comparison is rewritten
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("finished earlier") == 2 and "SFT warm-start ->" not in again.stdout


def test_cli_refuses_a_bad_arm_before_running_anything(tmp_path, tiny_model_dir):
    recipe, _ = make_recipe(tmp_path, tiny_model_dir)
    done = _ablate(recipe, "--set", "train.reward.alpha.start=1.0,2.5", "--out", tmp_path / "abl")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "train.reward.alpha.start" in done.stderr
    assert not (tmp_path / "abl").exists()
