"""rlsp's OpenMP default: torch's worker threads sleep when a parallel region ends instead of
spinning (benchmarks/threads.py shows why), unless the user says otherwise.

Checked by what the threads do, not by the environment variable: a fresh process imports rlsp
(as ``rlsp`` and ``python -m rlsp`` do first), runs 300 small two-thread matmuls and sleeps 2 ms
after each. CPU time spent while the main thread sleeps is the workers' waiting: spinning costs
about as much CPU as the sleep lasts (torch's own default spins too, for longer than 2 ms), passive
waiting next to none. The thresholds leave room for a busy machine, where a spinning worker gets
less of a core.
"""

from __future__ import annotations

import os
import subprocess
import sys

SLEPT = 300 * 0.002
PROBE = """
import time
import rlsp  # before torch, as the CLI imports it
import torch
torch.set_num_threads(2)
a = torch.randn(256, 256)
idle = 0.0
for _ in range(300):
    a @ a
    start = time.process_time()
    time.sleep(0.002)
    idle += time.process_time() - start
print(idle)
"""


def cpu_while_idle(policy: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def test_importing_rlsp_makes_waiting_threads_sleep():
    assert cpu_while_idle(None) < 0.1 * SLEPT


def test_a_users_setting_is_kept():
    assert cpu_while_idle("ACTIVE") > 0.25 * SLEPT  # the workers spin as the user asked
