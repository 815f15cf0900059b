"""The shared lua/ library is what mods may require; the host's own Lua halves
(host/runtime/lua/) are loaded by the host only.  Real lupa, real sandbox."""

from host.runtime.sandbox import PLUMBING_DIR, default_lua_dir
from modhost_util import make_host, mods_dir  # noqa: F401 - fixtures

PLUMBING = sorted(p.stem for p in PLUMBING_DIR.glob("*.lua"))


def test_the_split_is_disjoint():
    public = {p.stem for p in default_lua_dir().glob("*.lua")}
    assert {"json", "cron", "async"} <= public
    assert {"relic_compat", "relic_db", "relic_io", "relic_imgui", "relic_game", "llama_ffi", "llm",
            "rag", "grammar"} <= set(PLUMBING)
    assert not public & set(PLUMBING)


def test_sandboxed_mod_cannot_require_plumbing(make_host):
    names = ", ".join(f'"{n}"' for n in PLUMBING)
    host, console = make_host({"probe": f"""
        for _, name in ipairs({{ {names} }}) do
          local ok, m, err = pcall(require, name)
          print("require", name, ok, m, err)
          local okf, errf = pcall(dofile, name .. ".lua")
          print("dofile", name, okf)
          print("loadfile", name, loadfile(name .. ".lua") ~= nil)
        end
        print("json", type(require("json").encode), type(require("cron")), type(require("async")))
        """})
    mod = host.mods["probe"]
    assert mod.state == "loaded", mod.reason
    lines = console.mod_lines("probe")
    for name in PLUMBING:
        assert any(l.startswith(f"require\t{name}\ttrue\tnil\t") and f"module '{name}' not found" in l
                   for l in lines), (name, lines)
        assert f"dofile\t{name}\tfalse" in lines and f"loadfile\t{name}\tfalse" in lines, (name, lines)
    assert "json\tfunction\ttable\ttable" in lines
    # The host itself still loads them: the mod's db, io and ImGui are built from them.
    assert mod.load_lib("relic_compat") is not None
