# The two commands a newcomer needs (README): `make run` and `make test`.
# Everything is installed into ./.venv from requirements.lock; nothing needs to be installed by hand
# beyond python3 (>=3.10) itself.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install run test lint lock bench fault-table clean

$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "uv>=0.5,<1"
	# --compile-bytecode: every process (each run, each step) imports from .pyc, also where
	# PYTHONDONTWRITEBYTECODE is set (containers, CI), instead of compiling Dagster from source each time.
	$(BIN)/uv pip install -q --compile-bytecode -p $(BIN)/python -r requirements.lock -e . --no-deps
	@touch $@

install: $(BIN)/.installed  ## create .venv and install the locked dependencies

run: install  ## start the local sandboxes and the Dagster UI (embedded default)
	@bash scripts/run.sh

test: install  ## the whole suite: lint, definitions validation, pytest
	@bash scripts/test.sh

lint: install
	$(BIN)/ruff check sfmc_assets sfmc_assets_tests bench

lock:  ## re-resolve requirements.lock from pyproject.toml (dev, bench, k8s and cloud extras included)
	$(BIN)/uv pip compile -q -p $(BIN)/python pyproject.toml --extra dev --extra bench --extra k8s --extra cloud -o requirements.lock

bench: install  ## the benchmark suite (docs/benchmarks.md)
	$(BIN)/python -m bench

fault-table: install  ## run the fault matrix and write its results into docs/faults.md
	rm -rf .sfmc_assets/fault_matrix
	SFMC_FAULT_MATRIX_OUT=.sfmc_assets/fault_matrix $(BIN)/pytest -q -n 2 sfmc_assets_tests/faults
	$(BIN)/python -m sfmc_assets_tests.faults.table .sfmc_assets/fault_matrix

clean:
	rm -rf $(VENV) .sfmc_assets
