# Two commands on a fresh machine:
#   make demo   pretrain SimCLR on Fashion-MNIST, then linear-evaluate its checkpoint
#   make test   run the whole test suite
PYTHON ?= python3
VENV ?= .venv
WORKDIR ?= runs/demo
CONFIG ?= configs/simclr.py:fashion_mnist
FASHION_MNIST_DIR ?= /usr/share/datasets/fashion-mnist
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: demo test lint venv data bench clean-venv

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

venv: $(VENV)/.installed

# Debian's dataset-fashion-mnist gives the data offline; without apt the pipeline falls back
# to TFDS's download of fashion_mnist (and stops with a message naming both if neither works).
data:
	@if [ -f $(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz ]; then \
	  echo "Fashion-MNIST found in $(FASHION_MNIST_DIR)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) \
	    || echo "apt-get could not install dataset-fashion-mnist; TFDS download will be tried"; \
	else \
	  echo "apt not available (or not root): TFDS will try to download fashion_mnist"; \
	fi

demo: venv data
	$(PY) -m ssljax.train --config $(CONFIG) --workdir $(WORKDIR)
	$(PY) -m ssljax.linear_eval --workdir $(WORKDIR)

test: venv lint
	$(PY) -m pytest -n 2 -q --durations=20 tests

# ruff.toml: pycodestyle, pyflakes, import order and bugbear checks, and the formatter.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: venv
	$(PY) experiments/benchmark_step.py --config $(CONFIG)

clean-venv:
	rm -rf $(VENV)
