"""The embedding game's API: host.expose, host.emit, Observe/Override on hookable functions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from host.errors import GameAPIError
from modhost_util import Console, make_host, mods_dir, read_log, write_mod  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Item:
    name: str
    price: int


class Shop:
    def __init__(self):
        self.gold = 100
        self.sold: list[str] = []
        self._secret = "hidden"

    def price(self, name):
        return {"apple": 3, "fish": 7}.get(name, 0)

    def stock(self):
        return [Item("apple", 3), Item("fish", 7)]

    def buy(self, name, qty=1):
        cost = self.price(name) * qty
        self.gold -= cost
        self.sold.append(name)
        return cost


def game_host(make_host, mods: dict, **kw):
    host, console = make_host(mods, load=False, **kw)
    shop = Shop()
    host.expose("Shop", shop)
    host.expose("Rules", {"max_qty": 5, "tags": ["a", "b"]})
    host.declare_event("onQuestDone")
    shop.buy = host.hookable("Shop", "Buy", shop.buy)
    host.load()
    return host, console, shop


def test_exposed_objects_and_data(make_host):
    host, console, shop = game_host(make_host, {"m": """
        print(Shop.gold, Shop.price("fish"), Shop.stock()[2].name, Shop._secret, Rules.tags[2])
        print(pcall(function() Rules.max_qty = 99 end))
        print(pcall(Shop.price, function() end))
        print(Shop.buy("apple", 2), Shop.gold)
    """})
    lines = console.mod_lines("m")
    assert lines[0] == "100\t7\tfish\tnil\tb"
    assert lines[1].startswith("false\t") and "read-only" in lines[1]
    assert lines[2].startswith("false\t") and "functions cannot be passed" in lines[2]
    # Shop.gold is a snapshot taken when it was exposed; methods see the live object
    assert lines[3] == "6\t100" and shop.gold == 94


def test_emit_reaches_registered_mods(make_host):
    host, console, _ = game_host(make_host, {
        "a": 'registerForEvent("onQuestDone", function(d) print("a", d.quest, d.reward.gold) end)',
        "b": 'registerForEvent("onQuestDne", function() end)',
    })
    assert host.emit("onQuestDone", {"quest": "harbor", "reward": {"gold": 5}}) == 1
    assert console.mod_lines("a") == ["a\tharbor\t5"]
    assert "unknown event 'onQuestDne'" in read_log(host, "b") and "onQuestDone" in read_log(host, "b")
    with pytest.raises(GameAPIError, match="was not declared"):
        host.emit("onNothing")
    with pytest.raises(GameAPIError, match="part of the mod API"):
        host.expose("db", {})


def test_observe_and_override_around_a_game_function(make_host):
    host, console, shop = game_host(make_host, {
        "watch": """
            Observe("Shop", "Buy", function(self, name, qty) print("before", self.gold, name, qty) end)
            ObserveAfter("Shop", "Buy", function(self, name) print("after", name) end)
        """,
        "deal": """
            Override("Shop", "Buy", function(self, name, qty, wrapped)
              if name == "fish" then return 0 end          -- free fish
              return wrapped(name, qty) + 1                  -- a fee on the rest
            end)
        """,
    })
    assert shop.buy("apple", 2) == 7
    assert shop.buy("fish", 1) == 0
    assert shop.sold == ["apple"] and shop.gold == 94
    assert console.mod_lines("watch") == ["before\t100\tapple\t2", "after\tapple",
                                          "before\t94\tfish\t1", "after\tfish"]


def test_a_failing_override_falls_back_to_the_original(make_host):
    host, console, shop = game_host(make_host, {
        "broken": """
            Override("Shop", "Buy", function(self, name, qty, wrapped) error("oops") end)
        """,
        "slow": """
            Override("Shop", "Buy", function(self, name, qty, wrapped) while true do end end)
        """,
    })
    assert shop.buy("fish") == 7 and shop.sold == ["fish"]
    assert "oops" in read_log(host, "broken")
    assert host.mods["slow"].state == "quarantined" and "watchdog" in host.mods["slow"].reason
    assert shop.buy("apple") == 3            # the quarantined mod's override is gone
    assert any("failed; the game used the original" in l for l in console.lines)


def test_hooks_are_dropped_when_the_mod_reloads(make_host, mods_dir):
    host, console, shop = game_host(make_host, {
        "h": 'Override("Shop", "Buy", function(self, n, q, wrapped) return 42 end)'})
    assert shop.buy("apple") == 42
    (mods_dir / "h" / "init.lua").write_text("return {}")
    host.request_reload("h")
    host.update(0.01)
    assert shop.buy("apple") == 3


def test_modding_guide_game_example_runs(tmp_path, monkeypatch):
    """The Python block of MODDING.md's "The game's API" with its Lua block as the mod."""
    text = (ROOT / "docs" / "MODDING.md").read_text()
    section = text[text.index("## The game's API"):text.index("## Porting from CET")]
    (py,) = re.findall(r"```python\n(.*?)```", section, re.S)
    (lua,) = re.findall(r"```lua\n(.*?)```", section, re.S)
    write_mod(tmp_path / "mods", "hooks", lua)
    monkeypatch.chdir(tmp_path)
    out = []
    exec(compile(py, "MODDING.md[game API]", "exec"), {"print": lambda *a: out.append(a)})
    assert out == [(7,)]                     # 10 gold - 3 for the apple
    log = (tmp_path / "mods" / "hooks" / "hooks.log").read_text()
    assert "buying apple" in log and "bought apple" in log


def test_a_mod_calling_a_hooked_function_is_not_reentered(make_host):
    host, console, shop = game_host(make_host, {
        "self_hook": """
            Observe("Shop", "Buy", function(self, name) print("observed", name) end)
            registerForEvent("onQuestDone", function() print("quest") end)
            registerCommand("buy", "", function(item) print("paid", Shop.buy(item)) end)
        """,
        "other": 'Observe("Shop", "Buy", function(self, name) print("other saw", name) end)',
    })
    shop.buy = host.hookable("Shop", "Buy", shop.buy)      # re-declared: hooks are kept
    host.expose("Shop", shop)
    host.run_command("buy fish")
    assert console.mod_lines("self_hook") == ["paid\t7"]
    assert console.mod_lines("other") == ["other saw\tfish"]


def test_expose_after_load_reaches_running_mods(make_host):
    host, console = make_host({"late": """
        registerCommand("show", "", function() print(Weather.now(), Weather.kind) end)
    """})
    host.expose("Weather", {"now": lambda: "rain", "kind": "storm"})
    host.run_command("show")
    assert console.mod_lines("late") == ["rain\tstorm"]
    host.game.display_resolution = (1280, 720)
    assert host.mods["late"].call(host.mods["late"].env.GetDisplayResolution) == (True, 1280.0)


def test_expose_per_mod_binds_each_mod_to_its_own_value(make_host):
    """Each mod reaches only its own character; a mod the game does not bind gets no global."""
    bodies = {"bram": {"x": 0}, "oona": {"x": 0}}

    def body_api(mod_id):
        body = bodies.get(mod_id)
        if body is None:
            return None

        def step(dx):
            body["x"] += max(-5, min(5, dx))
            return body["x"]
        return {"name": mod_id, "step": step}

    host, console = make_host({
        "bram": 'registerCommand("walk", "", function() print(me.name, me.step(3), me.step(99)) end)',
        "oona": 'registerCommand("swim", "", function() print(me.name, me.step(-1)) end)',
        "stranger": 'print(type(me))',
    }, load=False)
    host.expose_per_mod("me", body_api)
    host.load()
    host.run_command("walk")
    host.run_command("swim")
    assert console.mod_lines("bram") == ["bram\t3\t8"] and console.mod_lines("oona") == ["oona\t-1"], console.text
    assert bodies == {"bram": {"x": 8}, "oona": {"x": -1}}
    assert console.mod_lines("stranger") == ["nil"]
    assert "me" in host.game.describe()
    with pytest.raises(GameAPIError, match="part of the mod API"):
        host.expose_per_mod("llm", body_api)


def test_emit_to_reaches_one_mod_and_returns_its_answer(make_host):
    host, console = make_host({
        "a": 'registerForEvent("onHear", function(who, text) print("a heard", who, text); return true end)',
        "b": 'registerForEvent("onHear", function(who, text) print("b heard", text); return { busy = true } end)',
        "c": 'registerForEvent("onHear", function() error("deaf") end)',
        "d": 'print("no callback")',
    }, load=False)
    host.declare_event("onHear")
    host.load()
    assert host.emit_to("a", "onHear", "Oona", "hello") is True
    assert host.emit_to("b", "onHear", "Oona", "psst") == {"busy": True}
    assert console.mod_lines("a") == ["a heard\tOona\thello"] and console.mod_lines("b") == ["b heard\tpsst"]
    assert host.emit_to("c", "onHear", "x", "y") is None and "deaf" in read_log(host, "c")
    assert host.emit_to("d", "onHear", "x", "y") is None
    assert host.emit_to("nobody", "onHear", "x", "y") is None
    with pytest.raises(GameAPIError, match="was not declared"):
        host.emit_to("a", "onSmell")
