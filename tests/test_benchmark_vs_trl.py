"""benchmarks/vs_trl.py's arithmetic: medians after the warm-up step, rates, ratios, the JSON keys.
(The benchmark itself runs minutes per side; it is run by hand, not here.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "vs_trl.py"
spec = importlib.util.spec_from_file_location("vs_trl", PATH)
vs_trl = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vs_trl)


def test_summaries_skip_the_warm_up_step_and_figures_compare_like_for_like():
    trl = vs_trl.summarise("trl", {"peak_rss_mb": 7000.0, "steps": [
        {"seconds": 500.0, "generated_tokens": 1.0},  # warm-up: left out
        {"seconds": 100.0, "generated_tokens": 1000.0}, {"seconds": 90.0, "generated_tokens": 900.0},
        {"seconds": 110.0, "generated_tokens": 1100.0}]})
    assert trl["s_per_step"] == 100.0 and trl["generated_tokens_per_step"] == 1000.0
    assert trl["s_per_1k_generated"] == pytest.approx(100.0) and trl["steps_measured"] == 3
    rlsp = vs_trl.summarise("rlsp-grpo", {"peak_rss_mb": 6000.0, "parameters": 100, "steps": [
        {"seconds": 1.0, "generated_tokens": 1.0, "generate_s": 1.0, "update_s": 1.0, "update_tokens": 1},
        {"seconds": 50.0, "generated_tokens": 800.0, "generate_s": 20.0, "update_s": 2.0, "update_tokens": 1000}]})
    assert rlsp["generation_tok_per_s"] == 40.0 and rlsp["update_gflops"] == pytest.approx(6 * 100 * 1000 / 2 / 1e9)
    figures = vs_trl.figures([trl, rlsp])
    assert figures["speedup"] == 2.0 and figures["trl_peak_rss_mb"] == 7000.0 and figures["rlsp_peak_rss_mb"] == 6000.0


def test_update_tokens_count_completions_and_each_distinct_prompt_once():
    import torch

    from rlsp.training.forward import Sequences

    prompt_ids = torch.tensor([[0, 5, 6], [7, 8, 9], [0, 5, 6]])
    completion_mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0]])
    seqs = Sequences(prompt_ids, (prompt_ids != 0).long(), completion_mask * 4, completion_mask)
    assert vs_trl.useful_tokens(seqs) == 6 + 2 + 3  # completions 3 + 1 + 2; prompts [5 6] and [7 8 9]


def test_generation_benchmark_reports_the_first_call_apart_and_medians_the_rest(monkeypatch):
    monkeypatch.syspath_prepend(str(PATH.parent))  # generation.py imports the workload from vs_trl.py
    spec = importlib.util.spec_from_file_location("generation_benchmark", PATH.parent / "generation.py")
    generation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generation)
    calls = [{"seconds": 90.0, "tokens": 1000, "steps": 128},  # compilation or engine start-up
             {"seconds": 20.0, "tokens": 1000, "steps": 100}, {"seconds": 25.0, "tokens": 1000, "steps": 125},
             {"seconds": 40.0, "tokens": 1200, "steps": 128}]
    summary = generation.summarise("hf-static-compile", calls, flops_per_token=2e8, peak_gflops=100.0)
    assert summary["first_call_s"] == 90.0
    assert summary["tok_per_s"] == 40.0  # median of 50, 40 and 30
    assert summary["ms_per_step"] == 200.0  # median of 200, 200 and 312.5
    # 1000 tokens x 0.2 GFLOP at 100 GFLOP/s need 2 s: 10%, 8% and 6% of the calls' time
    assert summary["compute_bound_fraction"] == pytest.approx(0.08)


def test_trls_process_sees_nothing_of_rlsp():
    """The peer runs as its users run it: no rlsp module loaded, none of the variables importing
    rlsp set (a value the user set before is theirs, and is passed on)."""
    import json
    import os
    import re
    import subprocess
    import sys

    import rlsp

    done = subprocess.run([sys.executable, str(PATH.parent / "trl_side.py"), "--probe"], env=vs_trl.peer_env(),
                          capture_output=True, text=True, check=True, timeout=120)
    seen = json.loads(done.stdout)
    assert seen["rlsp_imported"] is False
    expected = None if "OMP_WAIT_POLICY" in rlsp.ENVIRONMENT_SET else os.environ["OMP_WAIT_POLICY"]
    assert seen["OMP_WAIT_POLICY"] == expected
    for name in ("trl_side.py", "workload_reward.py", "transformers_side.py"):  # the files peers' processes load
        assert not re.search(r"^\s*(import|from) rlsp", (PATH.parent / name).read_text(), flags=re.MULTILINE), name
