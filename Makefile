# The two set-up commands a newcomer runs: `make test` and `make demo`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JOBS   ?= 2

.PHONY: test lint demo bench system-deps clean

$(STAMP): pyproject.toml setup.py src/_cpuid.c src/depotdelivery/_cpuid_build.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Best effort, and only when asked (`make system-deps`, or CI's .ci/run): as root on Debian it
# apt-gets the tools some tests and benchmarks use (fuse-overlayfs for the overlay mode,
# b3sum/hyperfine for baselines). `make test` never installs system packages; the tests that
# need a missing tool skip, and pytest's summary lists the missing tools (tests/conftest.py).
system-deps:
	@sh scripts/system-deps.sh

# ruff and mypy are configured in pyproject.toml (versions pinned in the test extra)
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy

test: $(STAMP) lint
	$(PY) -m pytest -q -n $(JOBS) -p no:cacheprovider

demo: $(STAMP)
	$(VENV)/bin/depotdelivery demo --dir demo-out

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build src/*.egg-info demo-out
	find src -name '*.so' -delete
