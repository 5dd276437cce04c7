"""``rlsp steer backtracking`` (an action of ``rlsp steer``): fit, measure and save the
backtracking direction, and report its mean projection per training step of a run (does it
strengthen as behaviour emerges?)."""

from __future__ import annotations

import json
from pathlib import Path

from rlsp.errors import ConfigError


def check_arguments(args) -> None:
    first, last = args.window
    if first > last:
        raise ConfigError(f"--window: FIRST ({first}) must not be after LAST ({last}); e.g. --window -12 -8.")
    if last >= 0:  # offset 0 is the sentence's first token: such a window reads the backtracking itself
        raise ConfigError(f"--window: LAST ({last}) must be negative, the window lies before each backtracking "
                          f"sentence (offset 0 is its first token); e.g. --window -12 -8.")
    if not 0 < args.heldout < 1:
        raise ConfigError(f"--heldout: a share between 0 and 1; got {args.heldout}.")
    for flag, value, least in (("--max-tokens", args.max_tokens, 16), ("--max-other", args.max_other, 1),
                               ("--limit", args.limit, 4)):
        if value is not None and value < least:
            raise ConfigError(f"{flag}: at least {least}; got {value}.")
    if not str(args.output).endswith(".safetensors"):
        raise ConfigError(f"--output: name a .safetensors file; got {args.output!r}.")


def run_backtracking(args) -> int:
    from rlsp.analysis.behaviours import MarkerDetector
    from rlsp.analysis.rollout_loader import load_rollouts
    from rlsp.modeling.causal_lm import load_causal_lm, model_config
    from rlsp.steering.backtracking_direction import (
        cohens_d,
        collect,
        difference_of_means,
        split_texts,
        window_counts,
    )
    from rlsp.steering.project import projection_by_step
    from rlsp.steering.vectors import SteeringVectors, architecture_of

    check_arguments(args)
    detector = MarkerDetector()
    texts = load_rollouts(args.texts, text_field=args.text_field, prompt_field=args.prompt_field)
    projected = load_rollouts(args.project) if args.project else None
    fit, heldout = split_texts(texts.samples, detector, args.heldout, args.limit, args.seed)
    n_layers = model_config(args.model).num_hidden_layers
    if args.layer is not None and not 0 <= args.layer < n_layers:
        raise ConfigError(f"--layer: {args.layer} is out of range; the model has decoder layers 0..{n_layers - 1}.")
    model, tokenizer = load_causal_lm(args.model, device="auto")
    offsets = tuple(args.window)
    fit_acts = collect(model, tokenizer, fit, detector, offsets, args.max_tokens, args.max_other, args.seed,
                       "fit texts")
    held_acts = collect(model, tokenizer, heldout, detector, offsets, args.max_tokens, args.max_other, args.seed + 1,
                        "held-out texts")
    if not fit_acts.window or not held_acts.window:
        raise ConfigError(f"no backtracking sentence lies within the first {args.max_tokens} tokens of the "
                          f"{'fit' if not fit_acts.window else 'held-out'} texts; raise --max-tokens.")
    vectors = difference_of_means(fit_acts)
    d_fit, d_heldout = cohens_d(fit_acts, vectors), cohens_d(held_acts, vectors)
    layer = args.layer if args.layer is not None else int(d_fit.argmax())
    report = {
        "trait": "backtracking", "model": args.model, "texts": str(args.texts), "window": list(offsets),
        "layer": layer, "heldout_d": round(float(d_heldout[layer]), 3), "fit_d": round(float(d_fit[layer]), 3),
        "fit": window_counts(fit_acts), "heldout": window_counts(held_acts),
        "d_fit_by_layer": [round(float(d), 3) for d in d_fit],
        "d_heldout_by_layer": [round(float(d), 3) for d in d_heldout],
    }
    if held_acts.control and sum(len(c) for c in held_acts.control) > 1:
        control = cohens_d(held_acts, vectors, of="control")
        against_control = cohens_d(held_acts, vectors, against="control")
        report["heldout_d_control_vs_other"] = round(float(control[layer]), 3)
        report["heldout_d_window_vs_control"] = round(float(against_control[layer]), 3)
    for name, run in (("texts", texts), ("project", projected)):
        if run is not None and run.steps:
            report[f"projection_by_step_{name}"] = projection_by_step(model, tokenizer, vectors, run.samples, layer)
    output = Path(args.output)
    SteeringVectors(vectors, args.model, architecture_of(model.config), {**report, "method": "window-minus-other"}) \
        .save(output)
    output.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print_report(report, args.model)
    print(f"saved {output} and {output.with_suffix('.json')}")
    return 0


def print_report(report: dict, model: str) -> None:
    """What ``rlsp steer backtracking`` found, in a few lines."""
    print(f"backtracking direction of {model}: {report['fit']['window_positions']} window and "
          f"{report['fit']['other_positions']} other positions from {report['fit']['texts']} texts.\n"
          f"layer {report['layer']}: Cohen's d on {report['heldout']['texts']} held-out texts = "
          f"{report['heldout_d']:.2f} "
          f"(fit texts {report['fit_d']:.2f}).")
    if "heldout_d_control_vs_other" in report:
        print(f"control (the same window before sentences with no behaviour): d = "
              f"{report['heldout_d_control_vs_other']:.2f} against other positions; backtracking windows against "
              f"control windows d = {report['heldout_d_window_vs_control']:.2f}.")
    for key in ("projection_by_step_texts", "projection_by_step_project"):
        if key in report:
            print(f"mean projection per step ({key.rsplit('_', 1)[1]}): "
                  + " ".join(f"{s}:{v:+.3f}" for s, v in report[key].items()))
