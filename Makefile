# `make lab` and `make test` are the whole set-up: each creates .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# make test runs every notebook from a cold model cache of its own, so timings are honest.
TEST_CACHE := $(CURDIR)/.cache/test

.PHONY: lab test unit student lint bench release grade clean-cache zoo constraints

# constraints.txt pins the versions CI tested (Binder uses it too); torch_index.py picks the CPU-only
# torch on a Linux machine without an NVIDIA GPU when PyTorch's CPU index answers, and says which it used.
$(VENV)/installed: requirements.txt requirements-dev.txt pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10 or newer is needed"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) course_tools/torch_index.py --constraint constraints.txt
	$(PY) -m pip install --quiet -c constraints.txt -r requirements-dev.txt
	touch $@

constraints: $(VENV)/installed  ## re-pin constraints.txt to what .venv has now (after changing requirements)
	{ echo "# The versions CI tested: make test and Binder install with -c constraints.txt. Regenerate: make constraints"; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^-e '; } > constraints.txt

lab: $(VENV)/installed  ## open the course in JupyterLab
	$(VENV)/bin/jupyter lab notebooks/

test: $(VENV)/installed  ## lint, unit tests, student copies in sync, every notebook executed (nbval)
	$(VENV)/bin/ruff check course_utils course_tools tests
	rm -rf $(TEST_CACHE)/models
	BACKDOOR_COURSE_CACHE=$(TEST_CACHE) $(PY) -m pytest tests solutions notebooks \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=900 -q

unit: $(VENV)/installed  ## unit tests only (fast)
	BACKDOOR_COURSE_CACHE=$(TEST_CACHE) $(PY) -m pytest tests -q

student: $(VENV)/installed  ## regenerate notebooks/ from solutions/
	$(PY) -m course_tools.student

lint: $(VENV)/installed
	$(VENV)/bin/ruff check course_utils course_tools tests

clean-cache: $(VENV)/installed  ## forget every cached model
	$(PY) -c 'import course_utils; course_utils.clear_cache()'

# Instructor tools (see INSTRUCTORS.md).
BENCH_ARGS ?=
bench: $(VENV)/installed  ## matrix, detectors, notebook times -> results/bench-<profile>.{json,md} (BENCH_ARGS="--skip-notebooks")
	$(PY) -m course_tools.bench $(BENCH_ARGS)

release: $(VENV)/installed  ## student bundle without solutions -> release/backdoor-course-student{/,.zip}
	$(PY) -m course_tools.release

SUBMISSIONS ?=
TIMEOUT ?= 900
grade: $(VENV)/installed  ## score a notebook or a folder: make grade SUBMISSIONS=path [TIMEOUT=900]
	$(if $(SUBMISSIONS),,$(error give the notebook or folder to grade: make grade SUBMISSIONS=path/to/submissions))
	$(PY) -m course_tools.grade $(SUBMISSIONS) --timeout $(TIMEOUT) --json $(or $(GRADES),grades.json)

SEED ?=
zoo: $(VENV)/installed  ## train the hidden test zoo of lesson 07 from a secret seed: make zoo SEED=1234 (cached)
	$(if $(SEED),,$(error give the test zoo's secret seed: make zoo SEED=<number>))
	$(PY) -m course_tools.hunt --build --seed $(SEED)
