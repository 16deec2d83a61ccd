# Every install goes through constraints.txt, which pins the CPU build of torch.
PY ?= python3
VENV ?= .venv
PIP = $(VENV)/bin/pip install -c constraints.txt
export HYPOTHESIS_PROFILE ?= ci
export OMP_NUM_THREADS ?= 1

.PHONY: env test lint docs demo bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(PIP) -q --upgrade pip
	$(PIP) -q -e ".[test,triton,docs]"
	touch $@

env: $(VENV)/.installed

lint: env
	$(VENV)/bin/ruff check condprob crf tpp diagrams tests benchmarks

# No --quiet: it hides the warnings that --strict turns into a failed build.
docs: env
	$(VENV)/bin/mkdocs build --strict

# The browser test (tests/test_site_browser.py) checks the site `make docs` just built.
test: lint docs
	CONDPROB_SITE=site $(VENV)/bin/python -m pytest -n 2 -q

demo: env
	$(VENV)/bin/condprob tour

bench: env
	bash benchmarks/peers/make_all.sh
	$(VENV)/bin/condprob bench

clean:
	rm -rf $(VENV) .peers .pytest_cache .hypothesis tour-report
