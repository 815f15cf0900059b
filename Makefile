# Relic: every target does its own set-up, so `make judy` and `make test`
# work on a fresh clone.  Set-up is idempotent and cached: the venv install
# reruns only when pyproject.toml changes (stamp files), and llama.cpp and the
# model are cached under $RELIC_HOME (default ~/.cache/relic) by host.setup.
# `make clean` removes .venv only; the cache stays.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.relic-installed
BENCH_STAMP := $(VENV)/.relic-bench-installed

.PHONY: setup test judy npc bench doctor clean

setup: $(STAMP)
	$(PY) -m host.setup all

$(PY):
	@$(PYTHON) -m venv $(VENV) || { echo "could not create $(VENV): install Python >= 3.10 with venv (Debian/Ubuntu: sudo apt-get install python3-venv)" >&2; exit 1; }

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -e '.[test,convert]'
	@touch $@

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(PIP) install -e '.[test,convert,bench]'
	@touch $@

test: setup
	$(PY) -m pytest -q

judy: setup
	$(PY) examples/judy/main.py $(if $(MODEL),--model $(MODEL))

npc: setup
	$(PY) examples/npc_dialogue/main.py $(if $(MODEL),--model $(MODEL))

bench: setup $(BENCH_STAMP)
	$(PY) bench/run_all.py

doctor: setup
	$(PY) -m host.setup doctor

clean:
	rm -rf $(VENV)
