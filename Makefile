# Two commands a newcomer needs: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test lint bench clean-data

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	dvc repro
	@echo "Look at: data/raw/sample/contact_sheet.png (the corpus), data/processed/align_preview.png (aligned clips)"
	@echo "Outputs: data/processed (clips, splits), models/ (emotion, generator), metrics/ (dvc metrics show)"
	@echo "Training runs and registered models: mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db"

test: $(VENV)/.installed
	python -m pytest

lint: $(VENV)/.installed
	ruff check .

bench: $(VENV)/.installed
	python benchmarks/bench_corpus.py
	python benchmarks/bench_align.py data/raw/sample
	python benchmarks/bench_train.py
