# `make run`: create .venv if needed and run the whole pipeline (smoke scale, CPU).
# `make test`: create/update .venv and run the test suite.
#
# CPU machines get torch pinned to a CPU build by constraints-cpu.txt. On a GPU
# machine, install your CUDA build of torch into .venv first and drop the pin:
#     python3 -m venv .venv && .venv/bin/pip install torch --index-url <your CUDA index>
#     make run CONSTRAINTS=
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints-cpu.txt
CORES ?= all
BIN := $(VENV)/bin

export PATH := $(CURDIR)/$(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: run test install clean dvc.yaml push pull

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(if $(CONSTRAINTS),--constraint $(CONSTRAINTS)) --editable '.[dev,cluster]'
	touch $@

run: install
	snakemake --workflow-profile workflow/profiles/default --cores $(CORES)

test: install
	python -m pytest

# dvc.yaml is generated from the stage table and the experiments in params.yaml.
dvc.yaml: install
	python -m latent_abstractions.dvc_yaml

# Share and restore artifacts through the DVC remote (default: ../latent-abstractions-dvc-remote).
push pull: install
	python -m latent_abstractions.remote $@

clean:
	rm -rf data/*/ logs .snakemake
