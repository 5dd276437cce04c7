"""`rlsp plan`: model sizes from configs, per-GPU figures against hand-computed ones, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_training import make_recipe
from transformers import AutoModelForCausalLM

from rlsp.cli import main
from rlsp.planning.memory_plan import plan_memory
from rlsp.planning.model_size import ModelSize, model_size

# A made-up model small enough to check every term by hand.
SIZE = ModelSize("made-up", params=1000, lm_head_params=100, largest_layer_params=200, layers=2, hidden=10,
                 intermediate=40, kv_dim=5, vocab=50)


def recipe(tmp_path, tiny_model_dir, *overrides):
    # micro-batch 2, 6 new tokens, 8 generation rows; GAE (a critic) unless overridden
    return make_recipe(tmp_path, tiny_model_dir, "train.micro_batch_size=2", *overrides)[1]


def test_model_size_counts_what_the_model_holds(tiny_model_dir):
    size = model_size(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert size.params == sum(p.numel() for p in model.parameters())  # tied weights once
    assert size.layers == model.config.num_hidden_layers and size.vocab == model.config.vocab_size


def test_the_paper_models_are_known_offline_with_their_published_sizes():
    assert model_size("meta-llama/Llama-3.1-8B-Instruct").params == 8_030_261_248
    qwen = model_size("Qwen/Qwen2.5-32B-Instruct")
    assert qwen.params == 32_763_876_352 and qwen.lm_head_params == 152064 * 5120


def test_one_process_plan_by_hand(tmp_path, tiny_model_dir):
    plan = plan_memory(SIZE, recipe(tmp_path, tiny_model_dir), "DDP", 1, prompt_tokens=4, compute_bytes=4)
    # policy + critic (backbone and one value head with its bias), fp32 + grads + Adam
    assert plan.trained == 16 * 1000 + 16 * (1000 - 100 + (10 + 1))
    assert plan.reference == 4 * 1000
    # s = 4 + 6 tokens; per layer 2 x 10 x (8*10 + 2*5 + 4*40) x 4 bytes = 20,000; logits 3 x 2 x 6 x 50 x 4
    assert plan.update == 2 * 20_000 + 7_200
    # KV 8 rows x 10 tokens x (2 x 2 layers x 5 x 4 bytes); logits 2 x 8 x 50 x 4; prefill one layer
    assert plan.generation == 8 * 10 * 80 + 3_200 + 8 * 4 * 250 * 4
    assert plan.peak == plan.trained + plan.reference + plan.update
    # A vocabulary whose logits exceed one chunk: the log-probs run chunk by chunk, except under ZeRO-3.
    big = ModelSize("big-vocab", 1000, 0, 200, 2, 10, 40, 5, vocab=10_000_000)
    r = recipe(tmp_path, tiny_model_dir)
    chunk = 3 * 256 * 2**20
    assert plan_memory(big, r, "DDP", 1, 4, compute_bytes=4).update == 2 * 20_000 + chunk
    assert plan_memory(big, r, "ZeRO-3", 4, 4).update == 2 * 10_000 + 3 * 2 * 6 * 10_000_000 * 4


def test_zero_plans_use_deepspeeds_estimates(tmp_path, tiny_model_dir):
    r = recipe(tmp_path, tiny_model_dir)
    zero3 = plan_memory(SIZE, r, "ZeRO-3", 4, prompt_tokens=4)
    # 4 x largest layer + 18 bytes x params / GPUs, for the policy (1000) and the critic (911)
    assert zero3.trained == (800 + 18 * 1000 // 4) + (800 + 18 * 911 // 4)
    assert zero3.reference == 2 * 1000 / 4
    gathered = plan_memory(SIZE, r, "ZeRO-3", 4, prompt_tokens=4).generation
    by_layer = plan_memory(SIZE, recipe(tmp_path, tiny_model_dir, "generation.zero3_gather=layer"), "ZeRO-3", 4,
                           prompt_tokens=4).generation
    assert gathered - by_layer == 2 * 1000  # the whole policy in bf16
    offload = plan_memory(SIZE, r, "ZeRO-2 + optimizer offload", 4, prompt_tokens=4)
    assert offload.trained == 2 * 1000 + 2 * 911 and offload.reference == 2 * 1000
    assert offload.cpu_per_node == 1.5 * 16 * (1000 + 911)  # max(4 x GPUs, 16) bytes per parameter


def test_critic_free_and_lora_plans_hold_less(tmp_path, tiny_model_dir):
    rloo = recipe(tmp_path, tiny_model_dir, "train.advantage_estimator=rloo", "train.samples_per_prompt=2",
                  "train.kl.placement=loss")
    assert plan_memory(SIZE, rloo, "DDP", 1, 4).trained == 16 * 1000
    lora = recipe(tmp_path, tiny_model_dir, "model.lora.enabled=true", "train.advantage_estimator=rloo",
                  "train.samples_per_prompt=2", "train.kl.placement=loss")
    plan = plan_memory(SIZE, lora, "ZeRO-3", 2, 4, lora_params=30)
    assert plan.reference == 0  # the base with the adapters off
    assert plan.trained == 800 + 18 * 30 // 2 + 2 * 1000 / 2  # adapters' states + the frozen base's shard


def test_the_plans_trained_states_are_the_bytes_a_real_step_holds(tmp_path, tiny_model_dir):
    """The plan's state accounting (fp32 weights, gradients, Adam's two moments; a frozen fp32
    reference) against the tensors a real one-process training step leaves: measured, not derived."""
    from rlsp.training.ppo_trainer import Trainer

    path, r = make_recipe(tmp_path, tiny_model_dir, "train.micro_batch_size=2")  # gae: policy and critic train
    trainer = Trainer(r, path)
    trainer.step = 1
    trainer.train_step()
    held = 0
    for opt in (trainer.models.actor, trainer.models.critic_opt):
        trained = [p for p in opt.model.parameters() if p.requires_grad]
        held += sum(2 * p.nbytes for p in trained)  # the weights and, during the step, their gradients
        held += sum(v.nbytes for state in opt.optimizer.state.values() for v in state.values()
                    if torch.is_tensor(v) and v.dim() > 0)  # Adam's moments (not its scalar step counts)
    reference = sum(p.nbytes for p in trainer.models.reference.frozen.parameters())
    plan = plan_memory(model_size(str(tiny_model_dir)), r, "DDP", 1, prompt_tokens=4, compute_bytes=4)
    assert plan.trained == held and plan.reference == reference


def test_plan_cli_prints_every_launch_and_exits_1_when_the_named_one_does_not_fit(capsys):
    recipe_path = "recipes/rl_llama3.1-8b_length.yaml"
    assert main(["plan", recipe_path, "--gpus", "8"]) == 0
    out = capsys.readouterr().out
    assert "8.03B parameters, with a critic" in out and out.count("| ZeRO-") == 5 and "| DDP |" in out
    assert main(["plan", recipe_path, "--gpus", "8", "--launch", "ZeRO-2"]) == 1
    assert main(["plan", recipe_path, "--gpus", "8", "--launch", "ZeRO-3"]) == 0
    assert main(["plan", recipe_path, "--gpus", "8", "--launch", "ZeRO-5"]) == 2
    assert "--launch 'ZeRO-5': choose one of" in capsys.readouterr().err


@pytest.mark.parametrize("path,gpus,launch", [
    ("recipes/rl_llama3.1-8b_length.yaml", "8", "ZeRO-3"),
    ("recipes/rl_qwen2.5-32b_length_judge.yaml", "16", "ZeRO-3 + optimizer offload"),
])
def test_the_paper_recipes_validate_and_their_headers_name_a_launch_the_plan_fits(path, gpus, launch):
    """Guards the recipes' headers against drifting from the plan; the plan's own terms are checked
    by hand above and against a real run's tensors."""
    from rlsp.generation.vllm_backend import vllm_available

    asks_for_vllm = "backend: vllm" in Path(path).read_text()
    assert main(["validate", path, *([] if vllm_available() or not asks_for_vllm else ["generation.backend=hf"])]) == 0
    assert main(["plan", path, "--gpus", gpus, "--launch", launch, "--prompt-tokens", "512"]) == 0


def test_vllm_engines_are_counted_by_hand(tmp_path, tiny_model_dir):
    """Each process's engine: bf16 weights (2 x 1000) and its KV cache; under ZeRO-3 also the one
    module the sync gathers at a time (the largest layer, 200 parameters, in bf16)."""
    kv = 1e-6  # GiB
    r = recipe(tmp_path, tiny_model_dir, "generation.backend=vllm", f"generation.vllm.kv_cache_gb={kv}")
    engine = 2 * 1000 + kv * 2**30
    zero3 = plan_memory(SIZE, r, "ZeRO-3", 4, prompt_tokens=4)
    assert zero3.generation == engine + 2 * 200
    assert zero3.peak == zero3.trained + zero3.reference + max(zero3.update, zero3.generation)  # asleep
    ddp = plan_memory(SIZE, r, "DDP", 1, prompt_tokens=4)
    assert ddp.generation == engine  # weights handed over whole, no gather
    awake = recipe(tmp_path, tiny_model_dir, "generation.backend=vllm", f"generation.vllm.kv_cache_gb={kv}",
                   "generation.vllm.sleep_during_update=false")
    kept = plan_memory(SIZE, awake, "DDP", 1, prompt_tokens=4)
    assert kept.peak == kept.trained + kept.reference + max(kept.update + engine, kept.generation)
    share = recipe(tmp_path, tiny_model_dir, "generation.backend=vllm", "generation.vllm.gpu_memory_utilization=0.5")
    assert plan_memory(SIZE, share, "DDP", 1, 4, gpu_gib=80.0).generation == 0.5 * 80 * 2**30
    with pytest.raises(ValueError, match="gpu_gib"):
        plan_memory(SIZE, share, "DDP", 1, 4)
    split = recipe(tmp_path, tiny_model_dir, "generation.backend=vllm", f"generation.vllm.kv_cache_gb={kv}",
                   "generation.vllm.tensor_parallel_size=4")
    assert plan_memory(SIZE, split, "ZeRO-3", 4, 4).generation == 2 * 1000 / 4 + kv * 2**30 + 2 * 200
