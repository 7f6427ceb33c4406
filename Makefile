# `make run`: create .venv if needed and run the whole pipeline (the science default, CPU).
# `make test`: create/update .venv with the development tools and run the test suite.
#
# The install: torch first (workflow/scripts/install_torch.py: a torch already in .venv is
# kept, so a GPU user installs their CUDA build first; otherwise PyTorch's CPU wheel index
# on Linux when reachable, else PyPI), then the lock's exact versions, each checked by hash:
# requirements.lock for `make run`, requirements-dev.lock (plus the dev, cluster and diffusers extras)
# for `make test`. Both are universal locks for Python 3.11-3.13 on Linux and macOS.
# `make lock` rewrites them after a dependency change (workflow/scripts/lock.py).
PYTHON ?= python3
VENV ?= .venv
CORES ?= all
BIN := $(VENV)/bin

export PATH := $(CURDIR)/$(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: run test install install-dev clean dvc.yaml push pull lock verify

# $(1): the lock to install.
define install_lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python workflow/scripts/install_torch.py
	$(BIN)/python -m pip install --quiet --require-hashes --requirement $(1)
	$(BIN)/python -m pip install --quiet --no-deps --editable .
	$(BIN)/python -m latent_abstractions.pipeline.dvc_plots_page
	touch $@
endef

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed: pyproject.toml requirements.lock constraints.txt
	$(call install_lock,requirements.lock)

$(VENV)/.installed-dev: pyproject.toml requirements-dev.lock constraints.txt
	$(call install_lock,requirements-dev.lock)

run: install
	snakemake --workflow-profile workflow/profiles/default --cores $(CORES)

test: install-dev
	python -m pytest

# Every artifact under data/ against its inputs, params and code as they are now.
verify: install
	python -m latent_abstractions.pipeline.verify

# dvc.yaml is generated from the stage table and the experiments in params.yaml.
dvc.yaml: install
	python -m latent_abstractions.pipeline.dvc_yaml

# Share and restore artifacts through the DVC remote (default: ../latent-abstractions-dvc-remote).
push pull: install
	python -m latent_abstractions.pipeline.remote $@

lock: install-dev
	python workflow/scripts/lock.py

clean:
	rm -rf data/*/ logs .snakemake
