"""Write the performance tables in README.md and docs/performance.md from the benchmarks' JSON.

    python benchmarks/vs_trl.py --steps 5 --sides trl,rlsp-grpo --json benchmarks/results/vs_trl.json
    python benchmarks/generation.py --json benchmarks/results/generation.json
    python benchmarks/tables.py            # rewrite every table from benchmarks/results/*.json
    python benchmarks/tables.py --check    # exit 1 where a table differs from what its JSON gives

A table sits between ``<!-- tables.py: NAME -->`` and ``<!-- tables.py: end -->`` and is the
rendering of ``benchmarks/results/NAME.json``, with the CPU, date, commit and command it was
measured with. tests/test_benchmark_tables.py runs ``--check``, so a figure edited by hand, or a
JSON measured again without rewriting the tables, fails the suite.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGES = (ROOT / "README.md", ROOT / "docs" / "performance.md")
BLOCK = re.compile(r"(<!-- tables\.py: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- tables\.py: end -->)", re.DOTALL)
SIDE_NAMES = {"trl": "TRL `GRPOTrainer`", "rlsp-grpo": "rlsp `grpo`", "rlsp-gae": "rlsp `gae` (policy + critic)",
              "rlsp-grpo-vllm": "rlsp `grpo`, vLLM generating"}
WAY_NAMES = {"rlsp": "rlsp's loop (the `hf` backend)", "rlsp-plain-weights": "rlsp's loop, unpacked weights",
             "hf": "transformers `generate`", "hf-static-compile": "`generate`, static cache + `torch.compile`",
             "vllm": "vLLM"}


def provenance(measured: dict) -> str:
    return (f"Measured {measured['date']} on {measured['cpu']}, torch {measured['torch']}, fp32 matmul peak "
            f"{measured['fp32_matmul_peak_gflops']:.0f} GFLOP/s, at commit {measured['commit']}: "
            f"`{measured['command']}`.")


def vs_trl_table(result: dict) -> str:
    sides = result["sides"]
    version = {s["side"]: s["environment"].get("trl") for s in sides}
    lines = ["| side | s/step | generated tokens/step | s per 1k generated | peak RSS |", "|---|---|---|---|---|"]
    for s in sides:
        name = SIDE_NAMES.get(s["side"], s["side"]) + (f" {version['trl']}" if s["side"] == "trl" else "")
        lines.append(f"| {name} | {s['s_per_step']:.1f} | {s['generated_tokens_per_step']:,.0f} | "
                     f"{s['s_per_1k_generated']:.1f} | {s['peak_rss_mb'] / 1024:.1f} GB |")
    by = {s["side"]: s for s in sides}
    ratios = []
    if "trl" in by:
        trl = by["trl"]
        for side, s in by.items():
            if side != "trl":
                ratios.append(f"{SIDE_NAMES.get(side, side)} is **{trl['s_per_step'] / s['s_per_step']:.2f}x TRL per "
                              f"step** ({trl['s_per_1k_generated'] / s['s_per_1k_generated']:.2f}x per generated "
                              f"token) at {s['peak_rss_mb'] / trl['peak_rss_mb']:.2f}x its peak memory.")
    phases = [f"{SIDE_NAMES.get(s['side'], s['side'])}: generation {s['generation_tok_per_s']:.1f} tokens/s, update "
              f"{s['update_gflops']:.1f} GFLOP/s (6 x parameters x tokens)." for s in sides if "update_gflops" in s]
    return "\n".join(lines) + "\n\n" + " ".join(ratios + phases + [provenance(result["measured"])]) + "\n"


def markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table's lines: the header, its rule, a line per row."""
    rule = "|" + "---|" * len(header)
    return [f"| {' | '.join(header)} |", rule, *(f"| {' | '.join(cells)} |" for cells in rows)]


def generation_table(result: dict) -> str:
    lines = markdown(["way", "first call", "tokens/s (median of the rest)", "ms per decoding step",
                      "of the compute bound"],
                     [[WAY_NAMES.get(w["way"], w["way"]), f"{w['first_call_s']:.1f} s", f"{w['tok_per_s']:.1f}",
                       f"{w['ms_per_step']:.0f}", f"{w['compute_bound_fraction']:.0%}"] for w in result["ways"]])
    versions = result["ways"][0]["environment"]
    return ("\n".join(lines) + f"\n\nIn each way's process: transformers {versions['transformers']}. "
            + provenance(result["measured"]) + "\n")


def linear_shapes_table(result: dict) -> str:
    lines = [f"| weight (out x in) | per decoding step | `F.linear`, {result['rows']} rows | packed |",
             "|---|---|---|---|"]
    for s in result["shapes"]:
        lines.append(f"| {s['shape'][0]:,} x {s['shape'][1]:,} | {s['per_step']} | {s['linear_us']:,.0f} us | "
                     f"{s['packed_us']:,.0f} us |")
    lines.append(f"| **one decoding step** | | **{result['linear_ms']:.1f} ms** | **{result['packed_ms']:.1f} ms** |")
    return "\n".join(lines) + "\n\n" + provenance(result["measured"]) + "\n"


ZERO3_WAY_NAMES = {"hf-layer": "rlsp's loop, `zero3_gather: layer`", "hf-whole": "rlsp's loop, `zero3_gather: whole`",
                   "vllm": "a vLLM engine per process"}


def zero3_generation_table(result: dict) -> str:
    lines = markdown(["way", "generated tokens/s per process", "generation s/step", "step s",
                      "peak RSS of the largest process"],
                     [[ZERO3_WAY_NAMES.get(w["way"], w["way"]), f"{w['tok_per_s_per_process']:.1f}",
                       f"{w['generate_s']:.1f}", f"{w['step_s']:.1f}", f"{w['peak_rss_mb'] / 1024:.1f} GB"]
                      for w in result["ways"]])
    return "\n".join(lines) + "\n\n" + provenance(result["measured"]) + "\n"


RENDERERS = {"vs_trl": vs_trl_table, "vs_trl_vllm": vs_trl_table, "generation": generation_table,
             "generation_vllm": generation_table, "linear_shapes": linear_shapes_table,
             "zero3_generation": zero3_generation_table}


def render(name: str, results: Path = RESULTS) -> str:
    source = results / f"{name}.json"
    if name not in RENDERERS:
        raise SystemExit(f"tables.py: no table called {name!r}; known: {', '.join(sorted(RENDERERS))}")
    if not source.is_file():
        raise SystemExit(f"tables.py: {source} is missing; run the benchmark that writes it (see this file's help)")
    return RENDERERS[name](json.loads(source.read_text()))


def rewritten(text: str, results: Path = RESULTS) -> str:
    """``text`` with every marked table replaced by the rendering of its JSON."""
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("name"), results) + m.group(4), text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="Change nothing; exit 1 where a table is stale.")
    args = parser.parse_args()
    stale = []
    for page in PAGES:
        text = page.read_text()
        new = rewritten(text)
        if new != text:
            stale.append(page.relative_to(ROOT))
            if not args.check:
                page.write_text(new)
    verb = "differ from benchmarks/results (run python benchmarks/tables.py)" if args.check else "rewritten"
    for page in stale:
        print(f"{page}: tables {verb}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
