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
GAME_STAMP  := $(VENV)/.relic-game-installed
SUDO  := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup test judy npc game xvfb bench doctor clean

setup: $(STAMP)
	$(PY) -m host.setup all

$(PY):
	@$(PYTHON) -m venv $(VENV) || { echo "could not create $(VENV): install Python >= 3.10 with venv (Debian/Ubuntu: sudo apt-get install python3-venv)" >&2; exit 1; }

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -e '.[test,convert]'
	@touch $@

# the game extra (pygame-ce) for `make game` and the headless game test
$(GAME_STAMP): pyproject.toml $(STAMP)
	$(PIP) install -e '.[test,convert,game]'
	@touch $@

# Xvfb (Debian package xvfb): the game test runs a real window on it; skipped when already there
xvfb:
	@command -v Xvfb >/dev/null 2>&1 || { echo "installing the Debian package xvfb (for the headless game test)"; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q xvfb || \
	  { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q xvfb; }; }

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(PIP) install -e '.[test,convert,bench]'
	@touch $@

test: setup xvfb $(GAME_STAMP)
	$(PY) -m pytest -q

judy: setup
	$(PY) examples/judy/main.py $(if $(MODEL),--model $(MODEL))

npc: setup
	$(PY) examples/npc_dialogue/main.py $(if $(MODEL),--model $(MODEL))

game: setup $(GAME_STAMP)
	$(PY) examples/market/main.py $(if $(MODEL),--model $(MODEL)) $(if $(TEMPLATE),--template $(TEMPLATE))

bench: setup $(BENCH_STAMP)
	$(PY) bench/run_all.py

doctor: setup
	$(PY) -m host.setup doctor

clean:
	rm -rf $(VENV)
