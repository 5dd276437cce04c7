"""rlsp's OpenMP default: waiting threads sleep (benchmarks/threads.py shows why), unless the user says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys


def omp_policy_after_import(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_value is not None:
        env["OMP_WAIT_POLICY"] = env_value
    code = "import rlsp, os, torch; print(os.environ['OMP_WAIT_POLICY'])"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_importing_rlsp_sets_passive_waiting():
    assert omp_policy_after_import(None) == "PASSIVE"


def test_a_users_setting_is_kept():
    assert omp_policy_after_import("ACTIVE") == "ACTIVE"
