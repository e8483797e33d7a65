# Developer entry points. Every target builds its own virtual environment
# (.venv) on first use, so a fresh machine needs only Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
OUT    ?= out

.PHONY: install test test-fast demo bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Whole suite: unit, slow and integration tests (real Ray, MLflow, S3).
test: $(STAMP)
	$(BIN)/python -m pytest

## Unit tests only (seconds).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not integration"

## The main job end to end on the embedded default: synthetic archive,
## local Ray, local MLflow store. Results under $(OUT)/demo.
demo: $(STAMP)
	$(BIN)/crossdiff demo --out $(OUT)/demo

## Benchmarks: each prints ratios measured side by side in one run.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache
