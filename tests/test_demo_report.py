"""The demo's report reads what `rlsp eval` and `rlsp train` write, and adds the stages."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from rlsp.config.recipe import Recipe
from rlsp.evaluate import summarise

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
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--seconds", "99"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "base model" in done.stdout and "0.250" in done.stdout and "after RLSP" in done.stdout
    written = json.loads((tmp_path / "summary.json").read_text())
    assert [s["accuracy"] for s in written["stages"]] == [0.25, 0.6, 0.7]
    assert written["demo_wall_seconds"] == 99
