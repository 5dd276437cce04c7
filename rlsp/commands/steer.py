"""``rlsp steer``: steering vectors.

    rlsp steer extract RECIPE [section.key=value ...]
    rlsp steer project VECTORS TEXTS.jsonl [--model NAME_OR_PATH] [--layer L] [--limit N]
    rlsp steer backtracking TEXTS --model NAME_OR_PATH [--layer L] [--window -12 -8] [--project RUN]
"""

from __future__ import annotations

import json
from pathlib import Path

from rlsp.commands import add_recipe_arguments

HELP = "Extract steering vectors from contrastive system prompts, or project texts on them."


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="steer_command", required=True, metavar="ACTION")
    extract = sub.add_parser("extract", help="Difference-of-means vectors per layer (recipe section steer:).")
    add_recipe_arguments(extract)
    project = sub.add_parser("project", help="Mean projection a . v / |v| of texts per layer (and per step).")
    project.add_argument("vectors", help="A .safetensors file written by rlsp steer extract.")
    project.add_argument("texts", help="rollouts.jsonl, eval_samples.jsonl or any JSONL with prompt and completion.")
    project.add_argument("--model", help="Model to read activations with; default: the one the vectors came from.")
    project.add_argument("--layer", type=int, help="Print this layer only.")
    project.add_argument("--limit", type=int, help="Read the first N texts.")
    project.add_argument("--batch-size", type=int, default=8)
    project.add_argument("--output", help="Also write the projections as JSON to this file.")
    back = sub.add_parser("backtracking", help="The direction before backtracking sentences (arXiv 2507.12638).")
    back.add_argument("texts", help="Logged completions or traces: anything rlsp inspect reads.")
    back.add_argument("--model", required=True, help="The model whose residual stream is read.")
    back.add_argument("--output", default="backtracking.safetensors", help="Vector file to write (and a .json report).")
    back.add_argument("--layer", type=int, help="Report this layer; default: the best separating on the fit texts.")
    back.add_argument("--window", type=int, nargs=2, default=[-12, -8], metavar=("FIRST", "LAST"),
                      help="Token offsets before each backtracking sentence (default -12 -8, the paper's).")
    back.add_argument("--text-field", help="The completion's field in a JSONL of another layout.")
    back.add_argument("--prompt-field", help="The prompt's field in such a JSONL.")
    back.add_argument("--limit", type=int, help="Use at most N texts with backtracking.")
    back.add_argument("--max-tokens", type=int, default=1024, help="Read at most this many completion tokens per text.")
    back.add_argument("--heldout", type=float, default=0.25, help="Share of texts held out to measure separation.")
    back.add_argument("--max-other", type=int, default=256, help="Other positions sampled per text.")
    back.add_argument("--seed", type=int, default=0)
    back.add_argument("--project", metavar="RUN", help="Also report the mean projection per training step of this run.")


def run(args) -> int:
    if args.steer_command in ("project", "backtracking") and args.output:
        check_output_file(Path(args.output), "--output")
    if args.steer_command == "backtracking":
        from rlsp.commands.steer_backtracking import run_backtracking

        return run_backtracking(args)
    return _extract(args) if args.steer_command == "extract" else _project(args)


def _extract(args) -> int:
    from rlsp.config import load_recipe, output_dir
    from rlsp.modeling.causal_lm import load_causal_lm
    from rlsp.output_folder import check_output_dir
    from rlsp.steering.extract import (
        check_steer_recipe,
        contrast_set,
        extract_vectors,
        write_examples,
    )

    recipe = load_recipe(args.recipe, args.overrides)
    base_dir = Path(args.recipe).resolve().parent
    check_steer_recipe(recipe, base_dir)
    out = output_dir(recipe, args.recipe)
    check_output_dir(out)
    model, tokenizer = load_causal_lm(recipe.model.name_or_path, device=recipe.model.device)
    contrast = contrast_set(recipe, base_dir, model, tokenizer)
    vectors = extract_vectors(recipe, model, tokenizer, contrast)
    out.mkdir(parents=True, exist_ok=True)
    path = out / recipe.steer.output
    vectors.save(path)
    write_examples(out / "steering_responses.jsonl", contrast)
    separation = vectors.info["separation_d"]
    best = max(range(len(separation)), key=lambda layer: separation[layer])
    print(f"steering vectors for {recipe.steer.trait!r}: {vectors.n_layers} layers x {vectors.hidden_size}, "
          f"{len(contrast.questions)} questions; best separation at layer {best} (d = {separation[best]:.2f}).\n"
          f"saved to {path} (responses in {out / 'steering_responses.jsonl'})")
    return 0


def _project(args) -> int:
    from rlsp.errors import ConfigError
    from rlsp.modeling.causal_lm import load_causal_lm, model_config
    from rlsp.steering.project import project_texts, read_texts, summarise_projections
    from rlsp.steering.vectors import SteeringVectors

    for flag, value in (("--limit", args.limit), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag}: at least 1; got {value}.")
    vectors = SteeringVectors.load(args.vectors, "vectors")
    if args.layer is not None:
        vectors.check_layer(args.layer, "--layer")
    rows = read_texts(Path(args.texts), limit=args.limit)
    vectors.check_fits(model_config(args.model or vectors.model), "vectors")  # before the weights load
    model, tokenizer = load_causal_lm(args.model or vectors.model, device="auto")
    summary = summarise_projections(rows, project_texts(model, tokenizer, vectors, rows, args.batch_size))
    layers = [args.layer] if args.layer is not None else range(vectors.n_layers)
    print(f"{summary['texts']} texts from {args.texts}; mean projection on {args.vectors} per layer:")
    for layer in layers:
        line = f"  layer {layer:>2}: {summary['mean_by_layer'][layer]:+.3f}"
        if "mean_by_step_and_layer" in summary:
            steps = summary["mean_by_step_and_layer"]
            line += "   by step: " + " ".join(f"{s}:{v[layer]:+.2f}" for s, v in steps.items())
        print(line)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def check_output_file(path: Path, flag: str) -> None:
    """An output file the command writes after its work: refuse, before the work, a path that is a
    folder or lies under a file (missing folders are made when it is written)."""
    from rlsp.errors import ConfigError

    if path.is_dir():
        raise ConfigError(f"{flag}: {path} is a folder; give the path of the file to write.")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ConfigError(f"{flag}: {blocking} is a file, so {path} cannot be written under it; choose another path.")
