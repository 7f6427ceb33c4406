# `make run`: create .venv if needed and run the whole pipeline (the science default, CPU).
# `make test`: create/update .venv and run the test suite.
#
# The install is the lock file's exact versions, checked by hash: requirements-cpu.lock
# (torch pinned to a CPU build). On a GPU machine, install your CUDA build of torch into
# .venv first and install the same lock without torch:
#     python3 -m venv .venv && .venv/bin/pip install torch --index-url <your CUDA index>
#     make run LOCK=requirements-gpu.lock
# `make lock` rewrites both locks after a dependency change (workflow/scripts/lock.py).
PYTHON ?= python3
VENV ?= .venv
LOCK ?= requirements-cpu.lock
CORES ?= all
BIN := $(VENV)/bin

export PATH := $(CURDIR)/$(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: run test install clean dvc.yaml push pull lock

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --requirement $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --editable .
	$(BIN)/python -m latent_abstractions.dvc_plots_page
	touch $@

run: install
	snakemake --workflow-profile workflow/profiles/default --cores $(CORES)

test: install
	python -m pytest

# Every artifact under data/ against its inputs, params and code as they are now.
verify: install
	python -m latent_abstractions.verify

# dvc.yaml is generated from the stage table and the experiments in params.yaml.
dvc.yaml: install
	python -m latent_abstractions.dvc_yaml

# Share and restore artifacts through the DVC remote (default: ../latent-abstractions-dvc-remote).
push pull: install
	python -m latent_abstractions.remote $@

lock: install
	python workflow/scripts/lock.py

clean:
	rm -rf data/*/ logs .snakemake
