"""SFT training on a tiny model: loss falls, loss only on the assistant turn, LoRA rank 1, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rlsp.cli import main
from rlsp.config import load_recipe
from rlsp.errors import ConfigError
from rlsp.modeling.causal_lm import load_causal_lm
from rlsp.sft.dataset import conversation
from rlsp.sft.warm_start import build_trainer, run_sft

RECIPE = """\
data:
  prompt_template: "{prompt} Put the final answer in \\\\boxed{}."
  arith:
    levels: [2, 3]
sft:
  arith:
    size: 6
    error_share: 0.5
  max_length: 512
  per_device_batch_size: 3
  logging_steps: 1
"""



def tiny_recipe(tmp_path: Path, model_dir: Path, *overrides: str):
    path = tmp_path / "sft.yaml"
    path.write_text(RECIPE)
    out = tmp_path / "out"
    return (
        load_recipe(path, [f"model.name_or_path={model_dir}", f"run.output_dir={out}", *overrides]),
        out,
        path,
    )


def test_loss_falls_on_a_handful_of_examples(tmp_path, tiny_model_dir):
    recipe, out, _ = tiny_recipe(
        tmp_path,
        tiny_model_dir,
        "sft.max_steps=12",
        "sft.learning_rate=3.0e-3",
        "sft.lr_scheduler=constant",
    )
    result = run_sft(recipe, None, out)
    assert result.steps == 12
    assert result.last_loss < result.first_loss - 1.0, (result.first_loss, result.last_loss)
    log = json.loads((out / "sft_log.json").read_text())
    assert sum("loss" in entry for entry in log) == 12
    assert json.loads((out / "sft_data_stats.json").read_text())["n"] == 6


def test_only_assistant_tokens_carry_loss(tmp_path, tiny_model_dir):
    recipe, out, _ = tiny_recipe(tmp_path, tiny_model_dir, "data.system_prompt=Think step by step.")
    trainer, data = build_trainer(recipe, None, out)
    tokenizer = trainer.processing_class
    expected = {}
    for example in data.examples:
        row = conversation(example, recipe)
        full = tokenizer.apply_chat_template(
            row["prompt"] + row["completion"], tokenize=True, return_dict=True
        )["input_ids"]
        prompt = tokenizer.apply_chat_template(
            row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        assert full[: len(prompt)] == prompt  # the template renders the prompt the same way in both
        expected[tuple(full)] = (len(prompt), example.response)
    seen = 0
    for batch in trainer.get_train_dataloader():
        for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True):
            length = int(mask.sum())
            assert bool(mask[:length].all()) and not bool(mask[length:].any())  # right padding
            prompt_len, response = expected[tuple(ids[:length].tolist())]
            assert bool((labels[:prompt_len] == -100).all())  # system + user turn and "assistant\n"
            assert torch.equal(labels[prompt_len:length], ids[prompt_len:length])
            assert bool((labels[length:] == -100).all())  # padding
            trained = tokenizer.decode(ids[prompt_len:length])
            assert (
                trained == response + "<|im_end|>\n"
            )  # the answer and the end of turn, nothing else
            seen += 1
    assert seen == len(data.examples) == 6


def test_rank_1_lora_saves_reloads_and_generates(tmp_path, tiny_model_dir):
    recipe, out, _ = tiny_recipe(
        tmp_path,
        tiny_model_dir,
        "model.lora.enabled=true",
        "model.lora.r=1",
        "model.lora.alpha=4",
        "model.lora.target_modules=[q_proj, v_proj]",
        "model.lora.use_rslora=true",
        "sft.merge_adapters=false",
        "sft.max_steps=3",
        "sft.learning_rate=1.0e-2",
    )
    assert run_sft(recipe, None, out).saved == "adapter"
    config = json.loads((out / "adapter_config.json").read_text())
    assert (config["r"], config["use_rslora"], sorted(config["target_modules"])) == (
        1,
        True,
        ["q_proj", "v_proj"],
    )
    assert not (out / "config.json").exists()
    model, tokenizer = load_causal_lm(str(out), device="cpu")
    base, _ = load_causal_lm(str(tiny_model_dir), device="cpu")
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, base.state_dict()[n])]
    assert changed and all(
        "q_proj" in n or "v_proj" in n for n in changed
    )  # adapters merged in, nothing else
    assert tokenizer.chat_template is not None
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 1 + 2?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    generated = model.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] > prompt["input_ids"].shape[1]


def test_missing_lora_target_module_fails_before_training(tmp_path, tiny_model_dir):
    recipe, out, _ = tiny_recipe(
        tmp_path, tiny_model_dir, "model.lora.enabled=true", "model.lora.target_modules=[q_prj]"
    )
    with pytest.raises(
        ConfigError, match=r"'q_prj' match no module.*Did you mean 'q_prj' -> 'q_proj'"
    ):
        run_sft(recipe, None, out)
    assert not out.exists()  # nothing was written: the check runs before data, model and training
    head, _, _ = tiny_recipe(
        tmp_path, tiny_model_dir, "model.lora.enabled=true", "model.lora.target_modules=[lm_head]"
    )
    with pytest.raises(ConfigError, match="output head"):
        run_sft(head, None, out)


def sft_cli(path: Path, model_dir: Path, out: Path, *overrides: str) -> int:
    """`rlsp sft RECIPE` through the real CLI entry point, on the tiny model."""
    return main(["sft", str(path), f"model.name_or_path={model_dir}", f"run.output_dir={out}", *overrides])


def test_cli_end_to_end_merged_lora_loads_as_a_model(tmp_path, tiny_model_dir, capsys):
    _, out, path = tiny_recipe(tmp_path, tiny_model_dir)
    code = sft_cli(path, tiny_model_dir, out, "model.lora.enabled=true", "model.lora.r=2", "sft.max_steps=2")
    assert code == 0
    printed = capsys.readouterr().out
    assert "dropped 0 longer than sft.max_length=512" in printed and "merged model saved" in printed
    assert (out / "config.json").exists() and (out / "adapter" / "adapter_config.json").exists()
    assert (out / "chat_template.jinja").read_text().startswith("{% for message in messages %}")
    model, _ = load_causal_lm(str(out), device="cpu")
    assert type(model).__name__ == "LlamaForCausalLM"


def test_cli_reports_bad_data_without_traceback(tmp_path, tiny_model_dir, capsys):
    _, out, path = tiny_recipe(tmp_path, tiny_model_dir)
    code = sft_cli(path, tiny_model_dir, out, "sft.n=7")
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rlsp sft: error: {path}: sft.n is 7 but builtin:arith_traces has only 6 usable examples")


def test_a_saved_model_is_not_overwritten_by_accident(tmp_path, tiny_model_dir):
    recipe, out, _ = tiny_recipe(tmp_path, tiny_model_dir, "sft.max_steps=1")
    out.mkdir()
    (out / "config.json").write_text("{}")
    with pytest.raises(ConfigError,
                       match=r"already holds the output of an earlier rlsp sft \(config.json\).*--overwrite"):
        run_sft(recipe, None, out)
    assert (out / "config.json").read_text() == "{}"
    run_sft(recipe, None, out, overwrite=True)
    assert json.loads((out / "config.json").read_text())["model_type"] == "llama"
