# make setup: install the verified stack into .venv/ (about 13 minutes the first time, seconds after)
# make demo:  set up, then train GTPT-T body -> whole-body on the bundled mini data set, test, draw
# make test:  set up, then run the whole test suite
# make lint:  MMPose's flake8, isort and yapf settings (setup.cfg) over the code
# make gpu-check: set up, then the GPU check (docs/gpu.md); without CUDA its CUDA figures are skipped
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.gtpt-setup-done

.PHONY: setup install demo test lint clean gpu-check

setup: $(STAMP)

# refresh the installed copy (configs and tools under gtpt_mmpose/.mim) from the working tree
install: setup
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation .

# one line per figure; GPU_CHECK_ARGS passes options (e.g. --sections parity ddp)
gpu-check: install
	$(PY) tools/gpu_check/check.py $(GPU_CHECK_ARGS)

$(STAMP): tools/setup_env.sh requirements/constraints.txt requirements/runtime.txt requirements/deploy.txt setup.py
	PYTHON=$(PYTHON) bash tools/setup_env.sh
	touch $@

demo: install
	$(PY) tools/run_demo.py

test: install
	$(PY) -m pytest tests -ra

# the code and configs, tests/data excluded (setup.cfg says so for each tool)
LINT_PATHS := gtpt_mmpose tools demo configs tests setup.py

lint: setup
	$(VENV)/bin/flake8 $(LINT_PATHS)
	$(VENV)/bin/isort --check-only --diff $(LINT_PATHS)
	$(VENV)/bin/yapf --diff -r -p -e 'tests/data/*' -e 'gtpt_mmpose/.mim/*' $(LINT_PATHS)

clean:
	rm -rf work_dirs outputs build *.egg-info gtpt_mmpose/.mim
