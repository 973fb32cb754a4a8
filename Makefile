# make setup: install the verified stack into .venv/ (about 13 minutes the first time, seconds after)
# make demo:  set up, then train GTPT-T body -> whole-body on the bundled mini data set, test, draw
# make test:  set up, then run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.gtpt-setup-done

.PHONY: setup install demo test clean

setup: $(STAMP)

# refresh the installed copy (configs and tools under gtpt_mmpose/.mim) from the working tree
install: setup
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation .

$(STAMP): tools/setup_env.sh requirements/constraints.txt requirements/runtime.txt setup.py
	PYTHON=$(PYTHON) bash tools/setup_env.sh
	touch $@

demo: install
	$(PY) tools/run_demo.py

test: install
	$(PY) -m pytest tests -ra

clean:
	rm -rf work_dirs outputs build *.egg-info gtpt_mmpose/.mim
