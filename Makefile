# keras_tinyloc: `make demo` and `make test` work on a fresh machine (they create .venv).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench notebooks venv clean-venv

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m keras_tinyloc demo

test: $(STAMP)
	$(PY) -m pytest -q -ra --durations=15

# the notebooks from notebooks/build_notebooks.py, executed with full settings, outputs kept (committed)
notebooks: $(STAMP)
	$(PY) notebooks/build_notebooks.py --execute

bench: $(STAMP)
	$(PY) -m pytest -q -m benchmark tests
	for f in benchmarks/[!_]*.py; do $(PY) $$f || exit 1; done

clean-venv:
	rm -rf $(VENV)
