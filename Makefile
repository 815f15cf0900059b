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

# GPU=cuda|vulkan|metal|hip|cpu on `make setup` builds that variant (cached by
# its cmake flags) and makes it this venv's choice; later targets use it.
# `make setup GPU=cpu` switches back (instant: the CPU build stays cached).
GPU ?=
GPU_LAYERS ?=
# Debian packages for the Vulkan build and Mesa's software driver (lavapipe).
VULKAN_DEBS := mesa-vulkan-drivers libvulkan-dev glslc spirv-headers

.PHONY: lua-corpus setup test test-fast test-gpu vulkan-deps rpc-server llama-server judy npc game xvfb bench doctor clean

# MODEL=path.gguf: setup then reports that model instead of fetching/announcing the default one
# Under `make test`, llama-server's step runs first: on a fresh machine it builds the
# library and llama-server in one build (both cached), and the llama step finds it.
setup: $(STAMP) $(if $(filter test,$(MAKECMDGOALS)),llama-server)
	$(if $(MODEL),RELIC_MODEL=$(MODEL)) $(PY) -m host.setup all $(if $(GPU),--gpu $(GPU))

# Installs only what is missing (dpkg-query first), so it is idempotent.
vulkan-deps: $(STAMP)
	@missing=""; for p in $(VULKAN_DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (Vulkan headers, glslc, Mesa's lavapipe driver)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@# Debian 12's Vulkan headers (1.3.239) are too old for the pinned ggml-vulkan:
	@# fetch Debian 13's into the Relic cache (headers only; nothing is installed)
	$(PY) -m host.setup vulkan-headers

$(PY):
	@$(PYTHON) -m venv $(VENV) || { echo "could not create $(VENV): install Python >= 3.10 with venv (Debian/Ubuntu: sudo apt-get install python3-venv)" >&2; exit 1; }

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -e '.[test,convert,remote]'
	@touch $@

# the game extra (pygame-ce) for `make game` and the headless game test
$(GAME_STAMP): pyproject.toml $(STAMP)
	$(PIP) install -e '.[test,convert,remote,game]'
	@touch $@

# Xvfb (Debian package xvfb): the game test runs a real window on it; skipped when already there
xvfb:
	@command -v Xvfb >/dev/null 2>&1 || { echo "installing the Debian package xvfb (for the headless game test)"; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q xvfb || \
	  { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q xvfb; }; }

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(PIP) install -e '.[test,convert,remote,bench]'
	@touch $@

# The ordinary suite runs on the CPU build whatever this venv chose
# (RELIC_GPU=cpu); the RPC and llama-server tests are part of it.
test: setup llama-server xvfb $(GAME_STAMP) lua-corpus
	RELIC_GPU=cpu $(PY) -m pytest -q

# Pure-Lua Debian packages (dkjson and its test suite, penlight, inspect, ...) for the
# differential test (tests/test_lua_differential.py); cached under $RELIC_HOME, idempotent.
lua-corpus: $(STAMP)
	$(PY) -m host.setup lua-corpus

# The GPU code path on Mesa's software Vulkan driver (lavapipe): builds the
# Vulkan variant (long the first time: shaders) and runs the generation,
# offload and probe tests on it.  GGML_VK_VISIBLE_DEVICES=0 makes ggml use
# lavapipe, which it skips by default (it is a CPU-type Vulkan device).
test-gpu: vulkan-deps $(STAMP)
	RELIC_GPU=vulkan $(PY) -m host.setup llama
	RELIC_GPU=vulkan GGML_VK_VISIBLE_DEVICES=$${GGML_VK_VISIBLE_DEVICES:-0} RELIC_TEST_GPU=vulkan \
	  $(PY) -m pytest -q -m gpu tests/test_gpu_offload.py

rpc-server: $(STAMP)
	$(PY) -m host.setup rpc-server $(if $(GPU),--gpu $(GPU))

# llama.cpp's llama-server from the pinned source, cached like the library (minutes
# the first time); `make test` runs real ones on 127.0.0.1.  `make test` builds the CPU one.
llama-server: $(STAMP)
	$(if $(filter test,$(MAKECMDGOALS)),RELIC_GPU=cpu) $(PY) -m host.setup llama-server $(if $(GPU),--gpu $(GPU))

# What needs no model and no llama.cpp build, and is not marked slow (under a minute):
# no set-up beyond the venv; the library and model settings point at nothing, so a
# test that needs them but is not marked needs_model (tests/conftest.py) fails here
# instead of building or downloading.
test-fast: $(STAMP)
	LLAMA_CPP_LIB=/nonexistent/libllama.so RELIC_MODEL=/nonexistent/model.gguf \
	RELIC_EMBED_MODEL=/nonexistent/embed.gguf $(PY) -m pytest -q -m "not needs_model and not slow" \
	--skip-missing-ui -rs

# SERVER=URL: `llm` runs on that llama-server (or OpenAI-compatible server: a URL ending in /v1;
# its key in RELIC_API_KEY) instead of the embedded model
judy: setup
	$(if $(GPU_LAYERS),RELIC_GPU_LAYERS=$(GPU_LAYERS)) $(if $(RPC),RELIC_RPC=$(RPC)) $(if $(SERVER),RELIC_SERVER=$(SERVER)) $(PY) examples/judy/main.py $(if $(MODEL),--model $(MODEL)) $(if $(TEMPLATE),--template $(TEMPLATE)) $(if $(TIMINGS),--timings)

npc: setup
	$(if $(SERVER),RELIC_SERVER=$(SERVER)) $(PY) examples/npc_dialogue/main.py $(if $(MODEL),--model $(MODEL)) $(if $(TEMPLATE),--template $(TEMPLATE))

game: setup $(GAME_STAMP)
	$(if $(SERVER),RELIC_SERVER=$(SERVER)) $(PY) examples/market/main.py $(if $(MODEL),--model $(MODEL)) $(if $(TEMPLATE),--template $(TEMPLATE))

bench: setup llama-server $(BENCH_STAMP)
	$(PY) bench/run_all.py

doctor: setup
	$(PY) -m host.setup doctor

clean:
	rm -rf $(VENV)
