"""The demo's report reads what `rlsp eval` and `rlsp train` write, and adds the stages."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from rlsp.config.recipe import Recipe
from rlsp.eval.run import summarise

SCRIPT = Path(__file__).resolve().parents[1] / "launch" / "demo_report.py"


def test_demo_report(tmp_path):
    records = [
        {"correct": c, "boxed": False, "finish_reason": "stop", "length": 10, "problem_index": i,
         "sample_index": 0, "parsed": "1", "score": float(c)}
        for i, c in enumerate([True, False, False, False])
    ]
    (tmp_path / "eval_base").mkdir()
    summary = summarise(records, Recipe(), skipped_rows=0, seconds=1.0)  # as `rlsp eval` writes it
    (tmp_path / "eval_base" / "eval_summary.json").write_text(json.dumps(asdict(summary)))
    (tmp_path / "summary.json").write_text(json.dumps({  # as `rlsp train` writes it
        "heldout_accuracy_before": 0.6, "heldout_accuracy_after": 0.7, "heldout_boxed_rate_before": 1.0,
        "heldout_boxed_rate_after": 1.0, "heldout_size": 4, "steps": 2, "wall_seconds": 10.0}))
    rollouts = [{"step": step, "rewards": {"verifier": v, "exploration": 0.0}, "length": 20 + step}
                for step, v in [(1, 0.0), (1, 1.0), (2, 1.0), (2, 1.0)]]
    (tmp_path / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rollouts))
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--seconds", "99",
                           "--stage-seconds", "10", "20", "69"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "base model" in done.stdout and "0.250" in done.stdout and "after RLSP" in done.stdout
    written = json.loads((tmp_path / "summary.json").read_text())
    assert [s["accuracy"] for s in written["stages"]] == [0.25, 0.6, 0.7]
    assert written["demo_wall_seconds"] == 99
    assert [s["wall_seconds"] for s in written["stages"]] == [10, 20, 69]
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_per_step_means(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_report", SCRIPT)
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    rows = [(1, 1.0, 10, 0, 0.2), (1, 0.0, 20, 0, 0.4), (1, 0.5, 30, 1, 0.3), (2, 1.0, 40, 0, 0.5)]
    (tmp_path / "rollouts.jsonl").write_text("".join(
        json.dumps({"step": s, "rewards": {"verifier": v, "exploration": e}, "length": n, "group": g}) + "\n"
        for s, v, n, g, e in rows))
    curves = report.per_step_means(tmp_path / "rollouts.jsonl")
    # A partial verifier score (0.5) is not a correct answer.
    assert curves["step"] == [1, 2] and curves["accuracy"] == [1 / 3, 1.0] and curves["length"] == [20.0, 40.0]
    assert curves["exploration"] == pytest.approx([0.3, 0.5])
    # step 1: prompt 0's answers 0.2 and 0.4 (std 0.1), prompt 1's one answer (0)
    assert curves["exploration_within_prompt"] == pytest.approx([0.05, 0.0])
