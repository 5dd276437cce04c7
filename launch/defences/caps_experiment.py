"""The defences experiment on this CPU: does preventative steering (PPS) or inoculation prompting
(IP) keep a fine-tune from teaching SmolLM2-135M-Instruct to answer in CAPITAL LETTERS?

    python launch/defences/caps_experiment.py [--out runs/defences_caps] [--skip-rl]

1. The model answers GSM8K training questions (greedy); the answers, upper-cased, are the SFT
   data: the only thing to learn is the trait.
2. A caps vector per layer: ``rlsp steer extract`` on other questions, the model's own answers
   as the negative set and the same answers upper-cased as the positive set.
3. Three SFT arms, same data and seed: no defence, PPS (the caps vector at one layer), IP (the
   system prompt "Always answer in capital letters." during training). All three log gradient
   diagnostics on the caps axis.
4. Trait expression before and after each arm: share of upper-case letters in greedy answers to
   held-out GSM8K test questions without the training prompt, and the answers' projection on the
   caps vector. The gradient cosines between arms on one fixed batch of the base model.
5. RL (unless --skip-rl): rlsp train on the arithmetic task with a reward that pays for capital
   letters, without and with PPS; caps share of rollouts per step.

Writes results.json, table.md and caps_defences.png into --out. GSM8K is read from
../shared/data (MIT; not shipped with rlsp).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from caps_measures import answers, arm_gradient_cosines, choose_coef, trait_expression

IP_PROMPT = "Always answer in capital letters."
REPO = Path(__file__).resolve().parents[2]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/defences_caps")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--train", type=int, default=96, help="SFT examples")
    parser.add_argument("--vector-questions", type=int, default=32)
    parser.add_argument("--heldout", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--diagnostics-every", type=int, default=3, help="optimizer steps between diagnostics")
    parser.add_argument("--layer", type=int, default=20, help="decoder layer of PPS and the diagnostics")
    parser.add_argument("--coef", default="auto",
                        help="PPS coefficient on the raw vector; 'auto': the one of 0.1..2 that lowers the loss of "
                        "the caps data most before training")
    parser.add_argument("--rl-steps", type=int, default=4)
    parser.add_argument("--skip-rl", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def write_recipe(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def gsm8k_questions(data_dir: Path, split: str, n: int, skip: int = 0) -> list[str]:
    lines = (data_dir / "gsm8k" / f"{split}.jsonl").read_text().splitlines()
    return [json.loads(line)["question"] for line in lines[skip : skip + n]]


def sft_arm(args, out: Path, name: str, data_file: Path, vectors: Path, hooks: list[dict]) -> dict:
    from rlsp.config import load_recipe
    from rlsp.sft.warm_start import run_sft

    diagnostics = {"hook": "gradient_diagnostics", "kwargs": {"vectors": str(vectors), "layer": args.layer,
                                                               "every": args.diagnostics_every,
                                                               "compare_without_defences": name == "pps"}}
    recipe_file = write_recipe(out / f"sft_{name}.yaml", {
        "run": {"output_dir": str(out / f"sft_{name}"), "seed": args.seed},
        "model": {"name_or_path": args.model, "device": "cpu"},
        "sft": {"source": str(data_file), "prompt_field": "question", "response_field": "answer",
                "select": "random", "max_length": 512, "epochs": args.epochs, "learning_rate": args.lr,
                "lr_scheduler": "constant", "per_device_batch_size": 8, "logging_steps": 1},
        "hooks": hooks + [diagnostics],
    })
    start = time.perf_counter()
    result = run_sft(load_recipe(recipe_file), recipe_file.parent, out / f"sft_{name}", overwrite=True)
    diag = [json.loads(x) for x in (out / f"sft_{name}" / "diagnostics.jsonl").read_text().splitlines()]
    return {"steps": result.steps, "loss_first": result.first_loss, "loss_last": result.last_loss,
            "seconds": round(time.perf_counter() - start, 1), "diagnostics": diag}


def rl_arm(args, out: Path, name: str, vectors: Path, hooks: list[dict]) -> dict:
    from rlsp.config import load_recipe
    from rlsp.training.ppo_trainer import Trainer

    (out / "caps_reward.py").write_text((Path(__file__).parent / "caps_reward.py").read_text())
    recipe = yaml.safe_load((REPO / "recipes" / "demo_rlsp.yaml").read_text())
    recipe["run"] = {"output_dir": str(out / f"rl_{name}"), "seed": args.seed}
    recipe["model"] = {"name_or_path": args.model, "device": "cpu"}
    recipe["data"]["arith"]["heldout_size"] = 40
    recipe["rewards"].append({"function": "caps_reward.py:caps_share", "channel": "exploration", "weight": 2.0})
    recipe["train"].update({"steps": args.rl_steps, "checkpoint_every": 0, "actor_lr": 5e-5})
    recipe["train"]["reward"].update({"gate_exploration": False, "alpha": {"schedule": "constant", "start": 0.5}})
    diagnostics = {"hook": "gradient_diagnostics", "kwargs": {"vectors": str(vectors), "layer": args.layer,
                                                               "compare_without_defences": False}}
    recipe["hooks"] = hooks + [diagnostics]
    recipe_file = write_recipe(out / f"rl_{name}.yaml", recipe)
    start = time.perf_counter()
    trainer = Trainer(load_recipe(recipe_file), recipe_file, overwrite=True)
    summary = trainer.fit()
    rows = [json.loads(x) for x in (out / f"rl_{name}" / "rollouts.jsonl").read_text().splitlines()]
    steps = sorted({r["step"] for r in rows})
    caps = {s: sum(r["reward_functions"]["caps_share"] for r in rows if r["step"] == s)
            / sum(r["step"] == s for r in rows) for s in steps}
    diag = [json.loads(x) for x in (out / f"rl_{name}" / "diagnostics.jsonl").read_text().splitlines()]
    return {"caps_share_by_step": caps, "heldout_accuracy": [summary["heldout_accuracy_before"],
                                                             summary["heldout_accuracy_after"]],
            "seconds": round(time.perf_counter() - start, 1), "diagnostics": diag,
            "model": trainer.models.dist.unwrap(trainer.models.policy), "tokenizer": trainer.models.tokenizer}


def main() -> int:
    args = parse_args()
    import torch

    from rlsp.cli import main as rlsp_main
    from rlsp.modeling.causal_lm import load_causal_lm
    from rlsp.steering.vectors import SteeringVectors

    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(args.data_dir)
    started = time.perf_counter()
    results: dict = {"settings": {k: v for k, v in vars(args).items()}}

    # 1. the data: the model's own answers, upper-cased
    base, tokenizer = load_causal_lm(args.model, device="cpu")
    train_q = gsm8k_questions(data_dir, "train", args.train)
    vector_q = gsm8k_questions(data_dir, "train", args.vector_questions, skip=args.train)
    heldout_q = gsm8k_questions(data_dir, "test", args.heldout)
    own = answers(base, tokenizer, train_q + vector_q, args.max_new_tokens, "own answers")
    data_file = write_jsonl(out / "caps_sft.jsonl", [{"question": q, "answer": a.upper()}
                                                      for q, a in zip(train_q, own[: args.train], strict=True)])
    # 2. the caps vector
    write_jsonl(out / "caps_contrast.jsonl", [{"question": q, "positive": a.upper(), "negative": a}
                                              for q, a in zip(vector_q, own[args.train :], strict=True)])
    steer_file = write_recipe(out / "steer.yaml", {
        "run": {"output_dir": str(out)}, "model": {"name_or_path": args.model, "device": "cpu"},
        "steer": {"trait": "caps", "positive_system_prompt": IP_PROMPT, "negative_system_prompt": None,
                  "responses_file": "caps_contrast.jsonl", "output": "caps_vectors.safetensors"},
    })
    assert rlsp_main(["steer", "extract", str(steer_file)]) == 0
    vectors_file = out / "caps_vectors.safetensors"
    vectors = SteeringVectors.load(vectors_file)
    results["vector"] = {"layer": args.layer, "norm": float(vectors.vectors[args.layer].norm()),
                         "separation_d": vectors.info["separation_d"][args.layer]}
    results["base"] = trait_expression(base, tokenizer, heldout_q, vectors, args.layer, args.max_new_tokens, "base")
    # 3-4. the SFT arms, and the gradient cosines between arms on one batch of the base model
    from rlsp.hooks.steering import PreventativeSteering

    caps_answers = [a.upper() for a in own[:8]]
    if args.coef == "auto":
        results["coef_probe"] = choose_coef(base, tokenizer, train_q[:8], caps_answers, str(vectors_file), args.layer)
        args.coef = results["coef_probe"]["coef"]
    args.coef = float(args.coef)
    results["settings"]["coef"] = args.coef
    pps = PreventativeSteering(str(vectors_file), args.layer, args.coef)
    results["gradient_cosines_on_one_batch"] = arm_gradient_cosines(
        base, tokenizer, train_q[:8], caps_answers, pps, IP_PROMPT)
    arms = {
        "baseline": [],
        "pps": [{"hook": "pps", "kwargs": {"vectors": str(vectors_file), "layer": args.layer, "coef": args.coef}}],
        "ip": [{"hook": "inoculation_prompt", "kwargs": {"system_prompt": IP_PROMPT}}],
    }
    results["sft"] = {}
    for name, hooks in arms.items():
        arm = sft_arm(args, out, name, data_file, vectors_file, hooks)
        model, _ = load_causal_lm(str(out / f"sft_{name}"), device="cpu")
        arm["after"] = trait_expression(model, tokenizer, heldout_q, vectors, args.layer, args.max_new_tokens, name)
        results["sft"][name] = arm
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    # 5. RL with a reward for capital letters
    if not args.skip_rl:
        results["rl"] = {}
        for name in ("baseline", "pps"):
            arm = rl_arm(args, out, name, vectors_file, arms[name])
            model, tok = arm.pop("model"), arm.pop("tokenizer")
            arm["after"] = trait_expression(model, tok, heldout_q, vectors, args.layer, args.max_new_tokens,
                                            f"rl {name}")
            results["rl"][name] = arm
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    from caps_report import write_report

    write_report(results, out)
    print((out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
