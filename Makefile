# `make lab` and `make test` are the whole set-up: each creates .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# make test runs every notebook from a cold model cache of its own, so timings are honest.
TEST_CACHE := $(CURDIR)/.cache/test

.PHONY: lab test unit student lint bench release grade clean-cache

$(VENV)/installed: requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10 or newer is needed"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

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
