# The two commands: `make demo` (set-up + the demo on CPU) and `make test` (what CI runs).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# One dependency set, shared with docker/Dockerfile (tests/test_docker.py checks they agree).
REQUIREMENTS := requirements.txt

.PHONY: env demo demo-analyses test clean

$(VENV)/.installed: $(REQUIREMENTS) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r $(REQUIREMENTS)
	$(PIP) install -q --no-deps -e .
	touch $@

env: $(VENV)/.installed

demo: env
	$(PY) train.py -c configs/demo.yaml
	$(PY) -m braintune.report runs/demo

# issue 11's analyses on the synthetic stories (configs/demo_analyses.yaml): two control LMs, removal, similarity, controls
ANALYSES := runs/demo_analyses
demo-analyses: env
	$(PY) -m braintune.lm train -c configs/demo_analyses.yaml lm.corpus=stories out_dir=$(ANALYSES)/lm_stories
	$(PY) -m braintune.lm train -c configs/demo_analyses.yaml lm.corpus=brackets out_dir=$(ANALYSES)/lm_brackets
	$(PY) evaluate.py remove -c configs/demo_analyses.yaml out_dir=$(ANALYSES)/remove
	$(PY) evaluate.py similarity -c configs/demo_analyses.yaml out_dir=$(ANALYSES)/similarity
	$(PY) evaluate.py compare -c configs/demo_analyses.yaml out_dir=$(ANALYSES)/compare

test: env
	$(PY) -m ruff check braintune tests benchmarks train.py evaluate.py
	$(PY) -m pytest -q tests

clean:
	rm -rf runs data/demo_stories
