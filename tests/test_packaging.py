"""The wheel carries every package, with rewards/ and verifiers/ under non-clashing names."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RENAMED = {"rewards": "rlsp_rewards", "verifiers": "rlsp_verifiers"}


def test_wheel_contains_all_packages(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("rlsp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for init in REPO.glob("**/__init__.py"):
        package = init.parent.relative_to(REPO)
        top = package.parts[0]
        if top not in ("rlsp", *RENAMED):
            continue
        expected.add("/".join((RENAMED.get(top, top), *package.parts[1:], "__init__.py")))
    assert expected and expected <= names, sorted(expected - names)
    assert "rlsp_rewards/length.py" in names and "rlsp_verifiers/math_verifier.py" in names
    assert not any(n.startswith(("rewards/", "verifiers/")) for n in names)  # "verifiers" is taken on PyPI
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "rlsp = rlsp.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
