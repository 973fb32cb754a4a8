# make setup: install the verified stack into .venv/ (about 13 minutes the first time, seconds after)
# make demo:  set up, then train GTPT-T body -> whole-body on the bundled mini data set, test, draw
# make test:  set up, then run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.gtpt-setup-done

.PHONY: setup demo test clean

setup: $(STAMP)

$(STAMP): tools/setup_env.sh requirements/constraints.txt requirements/runtime.txt setup.py
	PYTHON=$(PYTHON) bash tools/setup_env.sh
	touch $@

demo: setup
	$(PY) tools/run_demo.py

test: setup
	$(PY) -m pytest tests -ra

clean:
	rm -rf work_dirs outputs build *.egg-info gtpt_mmpose/.mim
