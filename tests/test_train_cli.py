"""`rlsp train` end to end through the real CLI, including a run killed mid-way and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

from test_training import make_recipe


def train(*args, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "rlsp", "train", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def test_killed_run_resumes_with_nothing_lost(tmp_path, tiny_model_dir):
    path, _ = make_recipe(tmp_path, tiny_model_dir)
    overrides = ["train.steps=8", "train.checkpoint_every=1", "train.keep_checkpoints=2"]
    run_dir = tmp_path / "run"
    victim = train(path, *overrides)
    deadline = time.time() + 120
    while not (run_dir / "checkpoints" / "step-000002").exists():
        assert victim.poll() is None, victim.stdout.read()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)  # no cleanup, no finally blocks
    victim.wait()

    finished = train(path, *overrides, "--resume")
    output, _ = finished.communicate(timeout=300)
    assert finished.returncode == 0, output
    assert "held-out accuracy" in output

    steps = Counter(json.loads(line)["step"] for line in (run_dir / "rollouts.jsonl").read_text().splitlines())
    assert steps == {s: 4 for s in range(1, 9)}  # every step once, 4 samples each
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert checkpoints == ["step-000007", "step-000008"]  # two kept, no stale temporaries
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 8


def test_resume_without_checkpoint_and_overwrite_are_refused(tmp_path, tiny_model_dir):
    path, _ = make_recipe(tmp_path, tiny_model_dir)
    done = train(path, "--resume")
    output, _ = done.communicate(timeout=120)
    assert done.returncode == 2 and "no checkpoint" in output and "Traceback" not in output
