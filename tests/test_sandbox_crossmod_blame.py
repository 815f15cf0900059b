"""Errors in a cross-mod call count against the caller.

Calling another mod's exported function with bad arguments 20 times used to
quarantine the callee.  Now the caller gets the error as its own Lua error
(counted in its window if it does not catch it); the callee only logs it.
"""

from __future__ import annotations

from modhost_util import frames, make_host, mods_dir, read_log  # noqa: F401
from host.runtime.grants import Grant

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
    }, tomls={"prober": "budget_ms = 5000\n", "attacker": "budget_ms = 5000\n"},
       grants={"prober": Grant(budget_ms=5000), "attacker": Grant(budget_ms=5000)})   # blame, not speed, is tested
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
    }, tomls={"attacker": "budget_ms = 5000\n"}, grants={"attacker": Grant(budget_ms=5000)})
    frames(host, 25)
    assert host.mods["library"].state == "loaded"
    assert host.mods["attacker"].state == "quarantined"
    good = host.mods["good"]
    ok, n = good.call(good.public.count)
    assert ok and n == 25


def test_pairs_over_a_huge_exported_table_is_bounded(make_host):
    """GetMod views list keys synchronously; past the transfer cap it is an error."""
    from host.limits import Limits

    host, console = make_host({
        "owner": "local t = {} for i = 1, 3000 do t['k' .. i] = i end return { big = t, small = { a = 1 } }",
        "reader": """
            local ok, err = pcall(function() for k in pairs(GetMod("owner").big) do end end)
            print(ok, err)
            for k, v in pairs(GetMod("owner").small) do print(k, v) end
        """,
    }, limits=Limits(transfer_items=1000))
    lines = console.mod_lines("reader")
    assert lines[0].startswith("false\t") and "more than 1000 keys" in lines[0]
    assert lines[1] == "a\t1"
    assert host.mods["owner"].state == "loaded" and host.mods["reader"].state == "loaded"


def test_copies_between_mods_stop_at_the_callers_deadline(make_host):
    """Copying a million values into another mod is host work on the caller's budget."""
    import time

    from host.limits import Limits

    host, console = make_host({
        "owner": "return { echo = function(x) return #x end }",
        "good": GOOD.replace('GetMod("library").area(2, 3)', "6"),
        "caller": """
            local big = {} for i = 1, 1000000 do big[i] = i end
            registerForEvent("onUpdate", function() GetMod("owner").echo(big) end)
        """,
    }, tomls={"caller": "budget_ms = 5\nmemory_mb = 256\n", "owner": "memory_mb = 256\n"},
       grants={"caller": Grant(memory_mb=256), "owner": Grant(memory_mb=256)},
        limits=Limits(transfer_items=2_000_000))
    t0 = time.perf_counter()
    frames(host, 1)
    took = time.perf_counter() - t0
    frames(host, 2)
    caller = host.mods["caller"]
    assert caller.state == "quarantined" and "budget" in caller.reason, caller.reason
    # the whole copy takes seconds; stopped at the deadline it takes a few ms (generous bound)
    assert took < 1.5, took
    assert host.mods["owner"].state == "loaded"
    good = host.mods["good"]
    ok, n = good.call(good.public.count)
    assert ok and n == 3
