"""Read-only host tables stay read-only through every iterator.

`select(2, pairs(json))` (and ipairs, next, rawget, table.insert) used to
hand a mod the writable table behind the read-only proxies of the host's
tables.  Each route is tried from a real mod next to a bystander that keeps
using the same libraries.  (The standard library tables -- string, table,
math, ... -- are each mod's own writable copies: test_sandbox_escape, class 9.)
"""

from __future__ import annotations

from modhost_util import frames, make_host, mods_dir  # noqa: F401

BYSTANDER = """
    ticks, last = 0, ""
    registerForEvent("onUpdate", function()
      ticks = ticks + 1
      last = string.format("%d:%s", ticks, table.concat({ string.rep("a", 2), os.date("!%Y", 0) }, "-"))
    end)
    return { state = function() return last end }
"""

ATTACK = """
    local libs = { %s }
    local report = {}
    for _, name in ipairs(libs) do
      local t = _G[name]
      local tries = {
        pairs = select(2, pairs(t)),
        ipairs = select(2, ipairs(t)),
      }
      local k, v = next(t)
      if type(v) == "table" then tries.next_value = v end
      for how, backing in pairs(tries) do
        local ok, err = pcall(function() backing.pwned = true end)
        report[#report + 1] = name .. "/" .. how .. "=" .. (ok and "WRITABLE" or "refused")
        if not ok and not tostring(err):find("read-only", 1, true) then
          report[#report + 1] = name .. "/" .. how .. " unclear error: " .. tostring(err)
        end
      end
      local ok = pcall(table.insert, t, "pwned")
      report[#report + 1] = name .. "/table.insert=" .. (ok and "WRITABLE" or "refused")
      -- the iterator itself, called on a plain table, is no key to anything
      local iter = pairs(t)
      report[#report + 1] = name .. "/iter=" .. (pcall(iter, {}) and "usable" or "refused")
      if t.pwned ~= nil or rawget(t, 1) ~= nil then report[#report + 1] = name .. " CHANGED" end
    end
    print(table.concat(report, "\\n"))
    -- the host's own library code still works with what it was given
    print(json.encode({ a = { 1, 2 } }), ("x"):rep(3), string.format("%%03d", 7))
"""

STD_LIBS = '"Cron", "json", "spdlog"'


def _check(lines: list[str], n_libs: int) -> None:
    report = "\n".join(lines)
    assert "WRITABLE" not in report and "CHANGED" not in report and "unclear" not in report, report
    assert "usable" not in report, report
    assert report.count("=refused") >= 4 * n_libs, report


def test_pairs_ipairs_next_do_not_expose_library_backings(make_host):
    host, console = make_host({"attacker": ATTACK % STD_LIBS, "bystander": BYSTANDER})
    frames(host, 5)
    lines = console.mod_lines("attacker")
    _check(lines[:-1], 3)
    assert lines[-1] == '{"a":[1,2]}\txxx\t007'
    by = host.mods["bystander"]
    ok, state = by.call(by.public.state)
    assert ok and state == "5:aa-1970"
    assert host.mods["attacker"].state == "loaded"


def test_nested_plain_tables_are_read_only_too(make_host):
    """A provider table holding plain tables hands them out read-only (index, pairs, rawget)."""

    class Provider:
        def install(self, mod):
            mod.expose("cfg", {"limits": {"max": 3}, "name": "x"})

    host, console = make_host(load=False, mods={"attacker": """
        local out = {}
        local function try(label, t) out[#out + 1] = label .. "=" .. (pcall(function() t.max = 99 end) and "WRITABLE" or "refused") end
        try("index", cfg.limits)
        for k, v in pairs(cfg) do if type(v) == "table" then try("pairs", v) end end
        try("rawget", rawget(cfg, "limits"))
        try("next", select(2, next(cfg, "name")) or cfg.limits)
        out[#out + 1] = "max=" .. cfg.limits.max
        print(table.concat(out, " "))
    """, "bystander": BYSTANDER})
    host.add_provider(Provider())
    host.load()
    frames(host, 2)
    assert console.mod_lines("attacker") == ["index=refused pairs=refused rawget=refused next=refused max=3"]



def test_llm_and_grammar_tables_stay_read_only(llm_host):
    host, console = llm_host({"attacker": ATTACK % '"llm", "grammar"', "bystander": BYSTANDER})
    frames(host, 3)
    lines = console.mod_lines("attacker")
    _check(lines[:-1], 2)
    by = host.mods["bystander"]
    ok, state = by.call(by.public.state)
    assert ok and state.startswith("3:")
