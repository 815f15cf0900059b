"""Shared fixtures: the real libllama and the real default model, loaded once."""

from __future__ import annotations

import threading

import pytest


@pytest.fixture(scope="session")
def lib():
    from host.llama import load

    return load()


@pytest.fixture(scope="session")
def model_path():
    from host.setup.model_fetch import model_path as resolve

    return resolve()


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
