# `make lab` and `make test` are the whole set-up: each creates .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# make test runs every notebook from a cold cache of its own (models and cached results), so timings are honest.
TEST_CACHE := $(CURDIR)/.cache/test
# Headless runs (nbval, the grader) never wait longer than this on one cell; a whole lesson takes ~3 min alone.
# BACKDOOR_COURSE_HEADLESS=1: the explorers draw a static view, no widget round trip (jupyter/nbclient#312).
CELL_TIMEOUT ?= 600

.PHONY: lab test test-tools unit student lint bench release grade clean-cache constraints nbgrader otter site zoo warm

# constraints.txt pins the versions CI tested (Binder uses it too); torch_index.py picks the CPU-only
# torch on a Linux machine without an NVIDIA GPU when PyTorch's CPU index answers, and says which it used.
$(VENV)/installed: requirements.txt requirements-dev.txt pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10 or newer is needed"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) course_tools/torch_index.py --constraint constraints.txt
	$(PY) -m pip install --quiet --no-compile -c constraints.txt -r requirements-dev.txt
	@# pip byte-compiles on one core; compileall uses every core (about 10 s less), and skips the packages' own
	@# test folders, a fifth of the code, never imported here (5 s less). Like pip, it skips files that do not
	@# compile (torch ships a few for newer Pythons), so its exit status and messages are not errors here.
	$(PY) -m compileall -q -j 0 -x '/tests?/' $(VENV)/lib > /dev/null 2>&1 || true
	touch $@

constraints: $(VENV)/installed  ## re-pin constraints.txt to what .venv has now (after changing requirements)
	{ echo "# The versions CI tested: make test and Binder install with -c constraints.txt. Regenerate: make constraints"; \
	  echo "# torch and torchvision: the version is pinned; the build is the one this machine installed (CI: the default"; \
	  echo "# build with its nvidia-* libraries, pinned below). Binder installs the same versions' +cpu build, the same"; \
	  echo "# code without the CUDA kernels; the nvidia-* pins then constrain nothing."; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^-e '; } > constraints.txt

lab: $(VENV)/installed  ## open the course in JupyterLab
	$(VENV)/bin/jupyter lab notebooks/

# The tools round trips run side by side (pytest-xdist, one worker each): each is a chain of single-threaded
# processes on lesson 00's cached models, so two cores finish them in about 55 s instead of 80 s.
test: $(VENV)/installed  ## lint, unit tests, student copies in sync, every notebook executed (nbval)
	$(VENV)/bin/ruff check course_utils course_tools tests
	rm -rf $(TEST_CACHE)/models $(TEST_CACHE)/results
	BACKDOOR_COURSE_CACHE=$(TEST_CACHE) BACKDOOR_COURSE_HEADLESS=1 $(PY) -m pytest tests solutions notebooks \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT) -q -m "not tools" \
		--durations=10 --junitxml=$(TEST_CACHE)/junit.xml
	BACKDOOR_COURSE_CACHE=$(TEST_CACHE) BACKDOOR_COURSE_HEADLESS=1 PATH=$(CURDIR)/$(VENV)/bin:$$PATH \
		$(PY) -m pytest tests/test_grading_tools.py -m tools -q -n 3 --durations=5 --junitxml=$(TEST_CACHE)/junit-tools.xml

test-tools: $(VENV)/installed  ## the nbgrader, otter-grader and Jupyter Book round trips alone (make test runs them too)
	BACKDOOR_COURSE_CACHE=$(TEST_CACHE) BACKDOOR_COURSE_HEADLESS=1 PATH=$(CURDIR)/$(VENV)/bin:$$PATH \
		$(PY) -m pytest tests/test_grading_tools.py -m tools -q -n 3 --durations=5

unit: $(VENV)/installed  ## unit tests only (fast)
	BACKDOOR_COURSE_CACHE=$(TEST_CACHE) BACKDOOR_COURSE_HEADLESS=1 $(PY) -m pytest tests -q -m "not tools"

student: $(VENV)/installed  ## regenerate notebooks/ from solutions/
	$(PY) -m course_tools.student

lint: $(VENV)/installed
	$(VENV)/bin/ruff check course_utils course_tools tests

warm: $(VENV)/installed  ## train every lesson's models in the background, so the lessons load them (LESSONS="03 07")
	$(PY) -m course_tools.warm --background $(if $(LESSONS),--lessons $(LESSONS))

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
MEMORY_MB ?= 4096
JOBS ?= 0
grade: $(VENV)/installed  ## score a notebook or a folder: make grade SUBMISSIONS=path [TIMEOUT=900 CELL_TIMEOUT=300 MEMORY_MB=4096 JOBS=0 RESUME=1 ZOO_SEED=secret]
	$(if $(SUBMISSIONS),,$(error give the notebook or folder to grade: make grade SUBMISSIONS=path/to/submissions))
	$(PY) -m course_tools.grade $(SUBMISSIONS) --timeout $(TIMEOUT) --cell-timeout $(CELL_TIMEOUT) \
		--memory-mb $(MEMORY_MB) --jobs $(JOBS) --json $(or $(GRADES),grades.json) $(if $(RESUME),--resume) \
		$(if $(ZOO_SEED),--zoo-seed $(ZOO_SEED))

# The field's grading and publishing tools (see INSTRUCTORS.md). The venv's bin goes on PATH because
# nbgrader calls `alembic` by name when it creates its gradebook.
LESSONS ?=
nbgrader: $(VENV)/installed  ## nbgrader course folder from solutions/ -> nbgrader-course/ (LESSONS="01 02")
	$(PY) -m course_tools.nbgrader --out nbgrader-course $(if $(LESSONS),--lessons $(LESSONS))
	@echo 'next: cd nbgrader-course && PATH=$(CURDIR)/$(VENV)/bin:$$PATH nbgrader generate_assignment lesson01'

otter: $(VENV)/installed  ## otter-grader master notebooks -> otter/lessonNN/ (LESSONS="01")
	$(PY) -m course_tools.otter --out otter $(if $(LESSONS),--lessons $(LESSONS))

# Headless: the explorers draw their static view, so no cell waits on a widget round trip.
site: $(VENV)/installed  ## the course website (Jupyter Book, lessons executed here) -> build/site/_build/html
	BACKDOOR_COURSE_HEADLESS=1 PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m course_tools.site --out build/site $(if $(LESSONS),--lessons $(LESSONS))

SEED ?=
zoo: $(VENV)/installed  ## train the hidden test zoo of lesson 07 from a secret seed: make zoo SEED=1234 (cached)
	$(if $(SEED),,$(error give the test zoo's secret seed: make zoo SEED=<number>))
	$(PY) -m course_tools.hunt --build --seed $(SEED)
