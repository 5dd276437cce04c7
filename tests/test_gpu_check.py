"""benchmarks/gpu_check.py's dry run: every GPU check's code path runs on the CPU with tiny sizes,
so the script a GPU session runs in its few minutes cannot rot between sessions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_dry_on_the_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--json", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    results = json.loads(out.read_text())
    checks = {k: v for k, v in results.items() if k != "environment"}
    assert set(checks) == {"cuda_tests", "precision", "rl_step_grpo", "rl_step_gae", "zero2", "zero3", "packing",
                           "chunked_head"}
    assert all(r["status"] == "ok" for r in checks.values()), {k: r.get("why") for k, r in checks.items()}
    assert "skipped" in checks["cuda_tests"]["pytest"]  # no GPU here: the CUDA tests skip
    assert checks["precision"]["weights"] == ["torch.float32"] == checks["precision"]["adam_states"]
    assert checks["rl_step_grpo"]["generation_tokens_per_s"] > 0 and 0 < checks["rl_step_gae"]["update_mfu"]
    assert checks["zero3"]["resumed_samples_equal"] and "ZeRO-3" in checks["zero3"]["engines"]
    assert "| packing | ok |" in done.stdout  # the table
