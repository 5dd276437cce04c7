"""The README's and docs' performance tables are what benchmarks/tables.py renders from the
benchmarks' JSON (benchmarks/results/), with nothing edited by hand."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "tables.py"
spec = importlib.util.spec_from_file_location("tables", PATH)
tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tables)

MEASURED = {"date": "2026-12-07", "cpu": "Some CPU (avx2)", "torch": "2.13.0+cpu", "torch_threads": 2,
            "fp32_matmul_peak_gflops": 90.0, "commit": "abc1234", "command": "python benchmarks/vs_trl.py"}


def test_every_table_in_the_pages_is_its_json_rendered():
    names = set()
    for page in tables.PAGES:
        text = page.read_text()
        names.update(m.group("name") for m in tables.BLOCK.finditer(text))
        assert tables.rewritten(text) == text, f"{page.name}: run python benchmarks/tables.py"
    assert {"vs_trl", "generation"} <= names


def test_a_figure_edited_by_hand_is_found(tmp_path):
    side = {"side": "trl", "s_per_step": 60.0, "generated_tokens_per_step": 1000.0, "s_per_1k_generated": 60.0,
            "peak_rss_mb": 7168.0, "environment": {"trl": "1.16.0"}}
    ours = {**side, "side": "rlsp-grpo", "s_per_step": 30.0, "s_per_1k_generated": 25.0, "peak_rss_mb": 3584.0,
            "environment": {}, "generation_tok_per_s": 80.0, "update_gflops": 50.0}
    (tmp_path / "vs_trl.json").write_text(json.dumps({"measured": MEASURED, "sides": [side, ours]}))
    page = "intro\n<!-- tables.py: vs_trl -->\nold\n<!-- tables.py: end -->\nafter\n"
    rendered = tables.rewritten(page, tmp_path)
    assert "| TRL `GRPOTrainer` 1.16.0 | 60.0 | 1,000 | 60.0 | 7.0 GB |" in rendered
    assert "**2.00x TRL per step** (2.40x per generated token) at 0.50x its peak memory" in rendered
    assert "Some CPU (avx2)" in rendered and "abc1234" in rendered and rendered.endswith("after\n")
    assert tables.rewritten(rendered, tmp_path) == rendered
    edited = rendered.replace("| 60.0 | 1,000", "| 50.0 | 1,000")
    assert tables.rewritten(edited, tmp_path) != edited
