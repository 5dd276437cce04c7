"""fp32 against bf16 autocast on the demo model, on fixed work, in the same run.

    python benchmarks/precision.py [--model smollm2-135m-instruct] [--threads N]

Times (best of 2) one forward+backward over 8 sequences of 136 tokens, and greedy generation
of exactly 32 tokens for 8 prompts, in fp32 and under bf16 autocast (fp32 weights), and prints
the bf16/fp32 ratio. Fixed lengths matter: timing whole training steps compares completions
of different lengths, since the two precisions sample different text.

It first prints the path ``model.precision=auto`` takes on this machine and why (torch's bf16
check and the timed matmul probe of rlsp/precision.py), with the CPU model and flags. Where bf16
is emulated it stops there unless --time-emulated-bf16 is given.
"""

from __future__ import annotations

import argparse
import time

import torch

from rlsp.modeling.causal_lm import load_causal_lm
from rlsp.precision import cpu_description, probe_cpu_bf16, resolve_precision


def best_of(fn, repeats: int = 2) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--time-emulated-bf16", action="store_true",
                        help="Time the model in bf16 even where bf16 is emulated (tens of minutes on such CPUs).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    probe = probe_cpu_bf16()
    auto = resolve_precision("auto", "cpu", training=True)
    print(f"CPU: {cpu_description()}")
    print(f"torch's bf16 check (oneDNN): {'native' if probe.torch_says_native else 'not native'}; "
          f"256^3 matmul: fp32 {probe.fp32_gflops:.1f} GFLOP/s, bf16 {probe.bf16_gflops:.1f} GFLOP/s")
    print(f"{auto.describe()}\n")
    if not probe.native and not args.time_emulated_bf16:
        print("bf16 is emulated here: the model timings would take tens of minutes in bf16, so this run "
              "stops at the probe. Pass --time-emulated-bf16 to time them anyway.")
        return
    model, tokenizer = load_causal_lm(args.model, dtype=torch.float32, device="cpu")
    ids = torch.randint(100, len(tokenizer) - 100, (8, 136), generator=torch.Generator().manual_seed(0))

    def forward_backward(bf16: bool):
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=ids, use_cache=False).logits[:, 40:].float()
            loss = torch.log_softmax(logits, -1).gather(-1, ids[:, 40:].unsqueeze(-1)).mean()
        loss.backward()
        model.zero_grad()

    def generate(bf16: bool):
        model.eval()
        prompt = ids[:, :30]
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=32,
                           min_new_tokens=32, do_sample=False, pad_token_id=tokenizer.pad_token_id)

    print(f"{'work':<28}{'fp32 s':>9}{'bf16 s':>9}{'bf16/fp32':>11}   ({args.threads} threads)")
    for name, fn in (("forward+backward 8x136", forward_backward), ("generate 8x32 tokens", generate)):
        fp32, bf16 = best_of(lambda f=fn: f(False)), best_of(lambda f=fn: f(True))
        print(f"{name:<28}{fp32:>9.2f}{bf16:>9.2f}{bf16 / fp32:>11.2f}")


if __name__ == "__main__":
    main()
