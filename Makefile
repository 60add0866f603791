# The two commands: `make demo` (set-up + the demo on CPU) and `make test` (what CI runs).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# One dependency set, shared with docker/Dockerfile (tests/test_docker.py checks they agree).
REQUIREMENTS := requirements.txt

.PHONY: env demo test clean

$(VENV)/.installed: $(REQUIREMENTS) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r $(REQUIREMENTS)
	$(PIP) install -q --no-deps -e .
	touch $@

env: $(VENV)/.installed

demo: env
	$(PY) train.py -c configs/demo.yaml
	$(PY) -m braintune.report runs/demo

test: env
	$(PY) -m ruff check braintune tests benchmarks train.py evaluate.py
	$(PY) -m pytest -q tests

clean:
	rm -rf runs data/demo_stories
