"""``rlsp inspect``: reasoning behaviour (backtracking, verification, ...) in logged completions.

    rlsp inspect RUN_DIR_OR_FILE [--compare RUN_B] [--out DIR] [--markers FILE]
    rlsp inspect traces.jsonl --text-field solution --prompt-field question
    rlsp inspect RUN --labeller MODEL   # sentence labels by a local LLM, markers as the fallback

Reads rlsp's rollouts.jsonl / eval_samples.jsonl, TRL's completions parquet files, verl's
rollout JSONL, or any JSONL with a named text field.
"""

from __future__ import annotations

from pathlib import Path

HELP = "Measure backtracking, verification, exploration and hedging in logged completions; table, plots, HTML."


def add_arguments(parser) -> None:
    parser.add_argument("run", help="A run directory (rlsp, TRL or verl) or one .jsonl / .parquet file.")
    parser.add_argument("--compare", metavar="RUN_B", help="A second run to put beside the first.")
    parser.add_argument("--out",
                        help="Where to write the files; default RUN/inspect (or inspect-<file> beside a file).")
    parser.add_argument("--markers", help="YAML or JSON file 'behaviour: [phrases]' replacing the default markers.")
    parser.add_argument("--text-field", help="The completion's field in a JSONL of another layout.")
    parser.add_argument("--prompt-field", help="The prompt's field in such a JSONL (default: prompt).")
    parser.add_argument("--correct-field", help="A field or reward column saying whether a sample is correct "
                        "(TRL: a reward column, correct when >= 1; verl: default 'acc').")
    parser.add_argument("--labeller", metavar="MODEL", help="Label sentences with this local causal LM "
                        "(taxonomy of arXiv 2506.18167) instead of markers; markers decide where it is unsure.")
    parser.add_argument("--labeller-batch-size", type=int, default=16)
    parser.add_argument("--top", type=int, default=3, help="Backtracking examples to print per run (default 3).")
    parser.add_argument("--max-html-samples", type=int, default=400, help="Samples in the HTML report per run.")


def run(args) -> int:
    from rich.console import Console

    from rlsp.analysis.behaviours import MarkerDetector
    from rlsp.analysis.inspection import default_out_dir, inspect_runs
    from rlsp.analysis.markers import read_markers
    from rlsp.analysis.terminal_view import print_summary, top_examples
    from rlsp.errors import ConfigError

    paths = [Path(args.run)] + ([Path(args.compare)] if args.compare else [])
    for flag, value in (("--top", args.top), ("--max-html-samples", args.max_html_samples),
                        ("--labeller-batch-size", args.labeller_batch_size)):
        if value < (0 if flag == "--top" else 1):
            raise ConfigError(f"{flag}: must be {'at least 0' if flag == '--top' else 'positive'}; got {value}.")
    detector = MarkerDetector(read_markers(args.markers) if args.markers else None)
    labeller = None
    if args.labeller:
        from rlsp.analysis.llm_labeller import LLMLabeller

        labeller = LLMLabeller(args.labeller, fallback=detector, batch_size=args.labeller_batch_size)
    fields = {"text_field": args.text_field, "prompt_field": args.prompt_field, "correct_field": args.correct_field}
    out = Path(args.out) if args.out else default_out_dir(paths[0], paths[1] if args.compare else None)
    blocking = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:  # found now, not after every completion has been labelled
        raise ConfigError(f"--out: {blocking} is a file; give a folder for the report (default: RUN/inspect).")
    result = inspect_runs(paths, out, detector, labeller, fields, args.max_html_samples)

    console = Console()
    rows_by_run = {v.name: v.rows for v in result.views}
    examples = {v.name: top_examples(v.run.samples, v.profiles, "backtracking", args.top)
                for v in result.views} if "backtracking" in result.behaviours and args.top else {}
    print_summary(console, rows_by_run, result.behaviours, examples, [n for v in result.views for n in v.run.notes])
    console.print(f"wrote {', '.join(p.name for p in result.files)} to {result.out_dir}")
    return 0
