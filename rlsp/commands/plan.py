"""``rlsp plan RECIPE --gpus N [--gpu-mem 80]``: per-GPU memory of ``rlsp train`` under each launch.

Reads only the model's config (the paper's models are known without network access) and the
recipe's batch and sequence settings; see rlsp/planning/memory_plan.py for what is counted.
Exits 1 when ``--launch`` names a launch that does not fit, so a job script can stop early.
"""

from __future__ import annotations

from rlsp.commands import add_recipe_arguments

HELP = "Per-GPU memory of a train recipe under DDP and each ZeRO stage and offload: which launches fit."


def add_arguments(parser) -> None:
    add_recipe_arguments(parser)
    parser.add_argument("--gpus", type=int, required=True, help="GPUs in the whole job.")
    parser.add_argument("--gpu-mem", type=float, default=80.0, help="GiB per GPU (default 80).")
    parser.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per machine (default 8).")
    parser.add_argument("--prompt-tokens", type=int, default=512,
                        help="Longest prompt in tokens, chat template included (default 512).")
    parser.add_argument("--launch", help="Check one launch only, e.g. 'ZeRO-3 + optimizer offload'; exit 1 "
                        "if it does not fit.")


def run(args) -> int:
    import math

    from rlsp.config import load_recipe
    from rlsp.errors import ConfigError
    from rlsp.planning.memory_plan import STRATEGIES, plan_memory, plan_table, trainable_lora_params
    from rlsp.planning.model_size import model_size
    from rlsp.training.advantage_step import value_heads

    if args.gpus < 1 or not args.gpu_mem > 0 or args.gpus_per_node < 1 or args.prompt_tokens < 1:
        raise ConfigError("--gpus, --gpu-mem, --gpus-per-node and --prompt-tokens must be positive.")
    if not math.isfinite(args.gpu_mem):
        raise ConfigError(f"--gpu-mem: GiB per GPU, a finite number such as 80; got {args.gpu_mem}.")
    if args.launch is not None and args.launch not in STRATEGIES:
        raise ConfigError(f"--launch {args.launch!r}: choose one of {', '.join(map(repr, STRATEGIES))}.")
    recipe = load_recipe(args.recipe, args.overrides)
    check_trains(recipe)
    size = model_size(recipe.model.name_or_path)
    lora = trainable_lora_params(size, recipe) if recipe.model.lora.enabled else None
    names = [args.launch] if args.launch else list(STRATEGIES)
    plans = [plan_memory(size, recipe, name, args.gpus, args.prompt_tokens, args.gpus_per_node, lora_params=lora,
                         gpu_gib=args.gpu_mem) for name in names]
    rows = plan_table(plans, args.gpu_mem)
    t, g = recipe.train, recipe.generation
    print(f"{recipe.model.name_or_path}: {size.params / 1e9:.2f}B parameters"
          + (f", LoRA {lora / 1e6:.1f}M trained" if lora else "")
          + (", with a critic" if value_heads(t) else ", critic-free")
          + f"; {args.gpus} GPU(s) of {args.gpu_mem:g} GiB; bf16; micro-batch {t.micro_batch_size} x "
          f"{args.prompt_tokens}+{g.max_new_tokens} tokens, gradient checkpointing "
          f"{'on' if t.gradient_checkpointing else 'off'}; generation "
          + (f"on a vLLM engine per GPU ({'released' if g.vllm.sleep_during_update else 'kept'} during the update)"
             if g.backend == "vllm" else f"{g.batch_size} rows"))
    print(format_rows(rows))
    print("GiB per GPU; 'fits' keeps 10% headroom. Not counted: CUDA context, fragmentation, "
          "communication buckets.")
    if args.launch is not None and not rows[0]["fits"]:
        return 1
    return 0


def check_trains(recipe) -> None:
    """rlsp plan sizes an rlsp train run: refuse a recipe that rlsp train would refuse for its
    settings (an SFT, eval or steer recipe has no rewards)."""
    import dataclasses

    from rlsp.errors import ConfigError
    from rlsp.training.preflight import check_training_recipe

    if not recipe.rewards:
        raise ConfigError("rewards: rlsp plan sizes rlsp train runs, and this recipe has no reward functions (it is "
                          "for rlsp sft, eval or steer); give a train recipe, e.g. recipes/rl_llama3.1-8b_length.yaml.")
    # The plan is for the machines that will train: whether vLLM is installed here does not matter.
    check_training_recipe(dataclasses.replace(recipe, generation=dataclasses.replace(recipe.generation, backend="hf")))


def format_rows(rows: list[dict]) -> str:
    """A Markdown table (also readable in a terminal)."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [row[k] if isinstance(row[k], str) else ("yes" if row[k] is True else "no" if row[k] is False
                                                          else f"{row[k]:.1f}") for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
