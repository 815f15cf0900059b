"""--template / RELIC_TEMPLATE: a named llama.cpp chat template for every chat of the model."""

from __future__ import annotations

import pytest

from host.app import set_template
from host.config import Config
from host.errors import TemplateError


def test_a_named_template_is_used_for_every_chat(model, monkeypatch):
    monkeypatch.delenv("RELIC_TEMPLATE", raising=False)
    msgs = [{"role": "user", "content": "hi"}]
    own = model.apply_chat_template(msgs)
    try:
        assert set_template(model, "llama2") is None
        assert model.apply_chat_template(msgs) != own and "[INST]" in model.apply_chat_template(msgs)
        model.template_override = None
        set_template(model, Config.load(environ={"RELIC_TEMPLATE": "llama2"}).template)  # the entry point's way
        assert "[INST]" in model.apply_chat_template(msgs)
    finally:
        model.template_override = None
    assert model.apply_chat_template(msgs) == own


def test_an_unknown_template_name_fails_at_start(model, monkeypatch):
    monkeypatch.delenv("RELIC_TEMPLATE", raising=False)
    with pytest.raises(TemplateError, match="not supported"):
        set_template(model, "no-such-template")
    assert model.template_override is None
    assert set_template(model) is None  # the default model has its own template: no warning
