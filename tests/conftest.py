"""Shared fixtures: the real libllama and the real default model, loaded once."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading

import pytest

# Tests that use any of these fixtures (directly or through another fixture) need the
# built llama.cpp library or the models: they are marked needs_model, which
# `make test-fast` (pytest -m "not needs_model") leaves out.  Modules that reach the
# model another way (the examples, relic run or rpc-server in a subprocess) are named in MODEL_MODULES;
# a single test can carry @pytest.mark.needs_model itself.  `make test-fast` points
# the library and model settings at nothing, so a test that needs them and is not
# marked fails there instead of quietly building or downloading.
MODEL_FIXTURES = frozenset({"prepared", "lib", "model_path", "model", "real_lib"})
MODEL_MODULES = frozenset({"test_judy", "test_npc_dialogue", "test_market_game", "test_rpc", "test_offload",
                           "test_crash_consistency", "test_worker_hostile"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if (MODEL_FIXTURES & set(getattr(item, "fixturenames", ()))
                or item.module.__name__.rpartition(".")[2] in MODEL_MODULES):
            item.add_marker(pytest.mark.needs_model)


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: runs on a GPU build (make test-gpu); skipped in make test")


# The window and ImGui tests need the ui extra (imgui-bundle, pygame-ce) and Xvfb, which `make test`
# installs.  `make test-fast` passes --skip-missing-ui: there a test that finds one of them missing
# is skipped, saying which; without the option it fails, so `make test` never skips them quietly.
UI_PACKAGES = {"imgui_bundle": "imgui-bundle", "pygame": "pygame-ce"}


def pytest_addoption(parser):
    parser.addoption("--skip-missing-ui", action="store_true",
                     help="skip (not fail) the tests whose ui extra (imgui-bundle, pygame-ce) or Xvfb is missing")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    outcome = yield
    exc = outcome.excinfo[1] if outcome.excinfo else None
    if isinstance(exc, ModuleNotFoundError) and exc.name in UI_PACKAGES:
        why = (f"{UI_PACKAGES[exc.name]} is not installed: the ui extra (`pip install -e '.[ui]'`; "
               "`make test` installs it)")
        if item.config.getoption("--skip-missing-ui"):
            outcome.force_exception(pytest.skip.Exception(why, _use_item_location=True))
        else:
            outcome.force_exception(pytest.fail.Exception(why, pytrace=False))


@pytest.fixture(scope="session")
def prepared():
    """What set-up resolved for this process's settings (RELIC_GPU=cpu under make test)."""
    from host.config import Config
    from host.startup import prepare

    return prepare(Config.load(environ=os.environ))


@pytest.fixture(scope="session")
def lib(prepared):
    from host.llama import load

    return load(prepared.library)


@pytest.fixture(scope="session")
def model_path(prepared):
    return prepared.model


@pytest.fixture(scope="session")
def model(lib, model_path):
    from host.llama import Model

    m = Model(model_path, lib=lib)
    yield m
    m.close()


@pytest.fixture
def ctx(model):
    from host.llama import Context

    c = Context(model, n_ctx=1024, n_batch=256)
    yield c
    c.close()


@pytest.fixture
def no_thread_left():
    """Assert that a test leaves no new thread running."""
    before = set(threading.enumerate())
    yield
    for t in set(threading.enumerate()) - before:
        t.join(timeout=5)
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not left, f"threads left behind: {left}"


@pytest.fixture(scope="module")
def shared_worker(model):
    """One inference worker for a test module (mods come and go; the worker stays)."""
    from host.worker import Worker, WorkerConfig

    w = Worker(model, WorkerConfig(n_ctx=1024, n_batch=64, n_seq_max=4, max_pending_per_mod=8)).start()
    yield w
    w.shutdown()


@pytest.fixture
def llm_host(tmp_path, shared_worker, model):
    """llm_host(mods={id: init_lua}, tomls={id: toml}, grants={id: Grant}, limits=Limits) -> (host, console)
    with `llm` and `grammar`."""
    from host.api.grammar import GrammarProvider
    from host.api.llm import LLMProvider
    from host.runtime.host import Host
    from modhost_util import Console, write_mod

    hosts = []

    def factory(mods, tomls=None, grants=None, limits=None):
        root = tmp_path / "mods"
        for mod_id, src in mods.items():
            write_mod(root, mod_id, src, (tomls or {}).get(mod_id))
        console = Console()
        host = Host(root, console=console, grants=grants, limits=limits)
        grammars = GrammarProvider(model)
        host.add_provider(grammars)
        host.add_provider(LLMProvider(shared_worker, grammar_from=grammars.resolve, owns_worker=False))
        host.load()
        hosts.append(host)
        return host, console

    yield factory
    for h in hosts:
        h.shutdown()


@pytest.fixture(scope="module")
def display(request):
    """A private Xvfb server for the window tests (market game, ImGui); yields its DISPLAY value."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        why = "Xvfb is not installed: run `make xvfb` (Debian package xvfb); `make test` does it"
        if request.config.getoption("--skip-missing-ui"):
            pytest.skip(why)
        pytest.fail(why)
    r, w = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(w), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    try:
        with os.fdopen(r) as f:
            number = f.readline().strip()
        assert number.isdigit(), "Xvfb did not report a display number"
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
