"""One configuration: arguments over the environment over the config file over the defaults,
every bad value a ConfigError naming the setting and its source, and the docs' table generated."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from host.config import SETTINGS, Config, settings_table
from host.errors import ConfigError
from host.runtime.grants import Grant

ROOT = Path(__file__).resolve().parents[1]


def test_sources_in_order_arguments_environment_file_defaults(tmp_path):
    f = tmp_path / "relic.toml"
    f.write_text('n_ctx = 512\nkv_type = "f16"\ntemplate = "chatml"\n'
                 '[limits]\nbudget_ms = 80\n'
                 '[mods.companion]\ntrusted = true\nbudget_ms = 200\n'
                 '[backends]\ncompanion = "http://127.0.0.1:8080"\n')
    cfg = Config.load(args={"n_ctx": 1024, "model": None}, file=f,
                      environ={"RELIC_N_CTX": "768", "RELIC_KV_TYPE": "q4_0", "RELIC_WORKER_NICE": "7"})
    assert cfg.n_ctx == 1024                      # argument beats environment and file
    assert cfg.kv_type == "q4_0"                  # environment beats file
    assert cfg.template == "chatml"               # file beats default
    assert cfg.model is None and cfg.split_mode == "layer"
    assert cfg.limits.budget_ms == 80
    assert cfg.grants["companion"] == Grant(trusted=True, budget_ms=200)
    assert cfg.backend_for("companion") == "http://127.0.0.1:8080"
    assert cfg.backend_for("ambient") == "embedded"
    w = cfg.worker_config()
    assert (w.n_ctx, w.kv_type, w.nice) == (1024, "q4_0", 7)


def test_the_config_is_frozen_all_the_way_down():
    cfg = Config.load(args={"trust": ["a"]})
    with pytest.raises(AttributeError):
        cfg.n_ctx = 5
    with pytest.raises(TypeError):
        cfg.grants["x"] = Grant(trusted=True)
    assert cfg.mod_grants() == {"a": Grant(trusted=True)}


@pytest.mark.parametrize("env,name", [
    ({"RELIC_WORKER_NICE": "abc"}, "RELIC_WORKER_NICE"),
    ({"RELIC_N_CTX": "1e9"}, "RELIC_N_CTX"),
    ({"RELIC_GPU": "quantum"}, "RELIC_GPU"),
    ({"RELIC_RPC": "nohost"}, "RELIC_RPC"),
    ({"RELIC_RPC": "a:99999"}, "RELIC_RPC"),
    ({"RELIC_SERVER": "ftp://x"}, "RELIC_SERVER"),
    ({"RELIC_SERVER_TIMEOUT": "nan"}, "RELIC_SERVER_TIMEOUT"),
    ({"RELIC_GPU_LAYERS": "lots"}, "RELIC_GPU_LAYERS"),
    ({"RELIC_DEBUG": "maybe"}, "RELIC_DEBUG"),
])
def test_a_bad_environment_value_is_one_clear_error(env, name):
    with pytest.raises(ConfigError) as info:
        Config.load(environ=env)
    message = str(info.value)
    assert message.startswith(f"${name}=") and "must be" in message and "\n" not in message


@pytest.mark.parametrize("text,fragment", [
    ("n_ctx = 'big'\n", "n_ctx must be"),
    ("colour = 'red'\n", "unknown setting 'colour'"),
    ("[limits]\nbudget_ms = -5\n", "budget_ms must be above 0"),
    ("[limits]\nno_such_limit = 1\n", "has no 'no_such_limit'"),
    ("[mods.x]\ntrusted = 'yes'\n", "[mods.x]"),
    ("[mods.x]\npowers = 1\n", "unknown keys"),
    ("[mods.'../up']\ntrusted = true\n", "not a valid mod id"),
    ("[backends]\nx = 'file:///etc'\n", "[backends] x"),
    ("n_ctx = [[[[1]]]]\n", "n_ctx must be"),
    ("not toml at all [", "not valid TOML"),
])
def test_a_bad_config_file_names_the_file_and_the_setting(tmp_path, text, fragment):
    f = tmp_path / "relic.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        Config.load(file=f)
    assert fragment in str(info.value) and str(f) in str(info.value)


def test_a_missing_or_huge_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Config.load(file=tmp_path / "nope.toml")
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * 300_000)
    with pytest.raises(ConfigError, match="limit"):
        Config.load(file=big)


def test_the_api_key_is_never_taken_from_an_argument_nor_shown():
    cfg = Config.load(args={"api_key": "from-argv"}, environ={"RELIC_API_KEY": "sk-secret"})
    assert cfg.api_key == "sk-secret"
    assert "sk-secret" not in repr(cfg)


def test_the_readme_settings_table_is_generated_from_the_settings():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- settings:start -->\n(.*?)\n<!-- settings:end -->", readme, re.S)
    assert block, "README.md has no generated settings table (python -m host.config)"
    assert block.group(1) == settings_table()
    assert {s.name for s in SETTINGS} <= set(Config.__dataclass_fields__)


def test_nothing_below_the_entry_points_reads_the_environment():
    """Settings are read at the entry points (cli, config, examples, bench, set-up's own tools) only."""
    allowed = {"host/cli.py", "host/config.py"}
    offenders = []
    for path in sorted((ROOT / "host").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in allowed or rel.startswith("host/setup/"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") \
                    and isinstance(node.value, ast.Name) and node.value.id == "os":
                offenders.append(f"{rel}:{node.lineno}")
    assert offenders == [], offenders
