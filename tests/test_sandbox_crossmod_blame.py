"""Errors in a cross-mod call count against the caller (issue 12 item 4, checklist 23).

Calling another mod's exported function with bad arguments 20 times used to
quarantine the callee.  Now the caller gets the error as its own Lua error
(counted in its window if it does not catch it); the callee only logs it.
"""

from __future__ import annotations

from modhost_util import frames, make_host, mods_dir, read_log  # noqa: F401

LIBRARY = """
    served = 0
    return {
      area = function(w, h) served = served + 1 return w * h end,
      served = function() return served end,
      apply = function(f, x) return f(x) end,
    }
"""

GOOD = """
    results = {}
    registerForEvent("onUpdate", function()
      results[#results + 1] = GetMod("library").area(2, 3)
    end)
    return { count = function() return #results end, last = function() return results[#results] end }
"""


def test_bad_arguments_to_another_mods_function_blame_the_caller(make_host):
    host, console = make_host({
        "library": LIBRARY,
        "good": GOOD,
        # uncaught: every frame's onUpdate fails in the attacker
        "attacker": """
            registerForEvent("onUpdate", function() GetMod("library").area("x", {}) end)
        """,
        # caught: 50 bad calls per frame inside pcall, the caller keeps running
        "prober": """
            errs, last = 0, nil
            registerForEvent("onUpdate", function()
              for i = 1, 10 do
                local ok, e = pcall(GetMod("library").area, nil, i)
                if not ok then errs = errs + 1 last = e end
              end
            end)
            return { errs = function() return errs end, last = function() return last end }
        """,
    })
    frames(host, 30)
    lib, good, attacker, prober = (host.mods[m] for m in ("library", "good", "attacker", "prober"))
    assert lib.state == "loaded", lib.reason
    assert attacker.state == "quarantined" and "errors within" in attacker.reason
    assert "arithmetic" in read_log(host, "attacker")
    assert prober.state == "loaded"
    ok, errs = prober.call(prober.public.errs)
    assert ok and errs == 300
    ok, last = prober.call(prober.public.last)
    assert "GetMod('library')" in last and "arithmetic" in last
    ok, n = good.call(good.public.count)
    assert ok and n == 30
    ok, v = good.call(good.public.last)
    assert v == 6
    lib_log = read_log(host, "library")
    assert "counted against mod 'prober'" in lib_log and "quarantined" not in lib_log


def test_callee_errors_with_a_callers_function_blame_the_caller(make_host):
    """A function lent to the callee that fails there is still the caller's error."""
    host, console = make_host({
        "library": LIBRARY,
        "good": GOOD,
        "attacker": """
            registerForEvent("onUpdate", function()
              for i = 1, 30 do pcall(GetMod("library").apply, function(x) error("boom " .. x) end, i) end
              GetMod("library").apply(function(x) return x.nope.nope end, 1)
            end)
        """,
    })
    frames(host, 25)
    assert host.mods["library"].state == "loaded"
    assert host.mods["attacker"].state == "quarantined"
    good = host.mods["good"]
    ok, n = good.call(good.public.count)
    assert ok and n == 25
