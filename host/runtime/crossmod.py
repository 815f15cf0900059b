"""GetMod: read-only views of another mod's public table, across runtimes.

Every mod has its own lua_State, so tables cannot be shared.  `GetMod(id)`
gives the caller a proxy table whose fields are looked up live in the other
mod's public table (raw lookups: no code of the other mod runs on reads);
nested tables are nested views, functions are proxies that call into the
owner through `Mod.call_detail` (the owner's own budget, capped by what is left of
the caller's: past that only the call is stopped; an ordinary error there is
the caller's fault: raised in the caller, logged but not counted in the owner).
Arguments and results are copied between runtimes; functions passed along
become proxies too.  Writes to a view raise a Lua error.

Re-entrancy rule: a cross-mod call into a mod that is already running (on the
host's call stack) is refused with a clean Lua error, so the host is never
re-entered recursively and no runtime is entered twice.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from host.errors import ModError
from host.runtime.convert import (CHECK_EVERY, HASH_NODE_BYTES, TABLE_BYTES, LuaFixup, TransferError,
                                  lua_type, past_deadline, string_cost, to_python)

if TYPE_CHECKING:
    from host.runtime.host import Host
    from host.runtime.mod import Mod

_tokens = itertools.count(1)
SCALARS = (type(None), bool, int, float, str, bytes)


class CrossCall:
    """A function of mod `owner` as seen from mod `caller` (a Python callable).

    Either path-based (a function reached through a GetMod view, looked up at
    call time) or a lent function (kept in owner.exports under a token, so
    unloading the owner drops it).
    """

    def __init__(self, cross: "CrossMod", caller: "Mod", owner: "Mod",
                 path: tuple | None = None, fn: Any = None):
        self.cross = cross
        self.caller_id, self.caller_gen = caller.id, caller.generation
        self.owner_id, self.owner_gen = owner.id, owner.generation
        self.path = path
        self.token = None
        if fn is not None:
            self.token = next(_tokens)
            owner.exports[self.token] = fn

    def __call__(self, *args):
        return self.cross.invoke(self, args)

    def __del__(self):
        # Runs when the caller's Lua GC frees the proxy closure.
        try:
            if self.token is not None:
                owner = self.cross.host.mods.get(self.owner_id)
                if owner is not None and owner.generation == self.owner_gen:
                    owner.exports.pop(self.token, None)
        except Exception:
            pass


class CrossMod:
    """The GetMod bridge functions of a Host (see module docstring)."""

    def __init__(self, host: "Host"):
        self.host = host

    def _loaded(self, mod_id: str):
        m = self.host.mods.get(mod_id)
        if m is None or m.state != "loaded" or m.box is None:
            return None
        return m

    def _describe(self, caller: "Mod", target: "Mod", value: Any, path: tuple):
        t = lua_type(value)
        if t is None:
            if isinstance(value, SCALARS):
                return "value", value
            return ("none",)
        if t == "table":
            return "table", target.id, list(path)
        if t == "function":
            # A bridge callable, returned raw: the caller's sandbox.lua wraps
            # it in a Lua closure (see Mod.bridge_function).
            return "function", caller.bridge_function(CrossCall(self, caller, target, path=path))
        return ("none",)

    @staticmethod
    def _path(path) -> tuple:
        if path is None:
            return ()
        p = to_python(path)
        return tuple(p) if isinstance(p, list) else ()

    def getmod(self, caller: "Mod", target_id):
        """GetMod(id) for `caller`: ("none",) | ("value", v) | ("table", id, path) | ("function", fn)."""
        if not isinstance(target_id, str):
            raise ModError("GetMod: mod id must be a string")
        if target_id == caller.id:
            return "value", caller.public
        target = self._loaded(target_id)
        if target is None:
            return ("none",)
        return self._describe(caller, target, target.public, ())

    def view_get(self, caller: "Mod", target_id: str, path, key):
        """Field `key` of the view (target_id, path)."""
        if not isinstance(key, (str, int, float, bool)):
            raise ModError(f"GetMod('{target_id}'): keys must be strings, numbers or booleans")
        target = self._loaded(target_id)
        if target is None:
            return ("none",)
        keys = self._path(path) + (key,)
        value = target.box.walk(target.public, *keys)
        return self._describe(caller, target, value, keys)

    def view_keys(self, caller: "Mod", target_id: str, path):
        """Keys of the view's table (for pairs)."""
        target = self._loaded(target_id)
        if target is None:
            return []
        tbl = target.box.walk(target.public, *self._path(path))
        if lua_type(tbl) != "table":
            return []
        cap = self.host.limits.transfer_items
        keys = []
        for k in tbl.keys():
            if lua_type(k) is None:
                keys.append(k)
                if len(keys) > cap:   # pairs() over a huge table: bounded like every transfer
                    raise TransferError(f"GetMod('{target_id}'): the table has more than {cap} keys; "
                                        "pairs() over it is refused")
        return keys

    # -- calls ------------------------------------------------------------------

    def invoke(self, cc: CrossCall, args: tuple):
        """Run a cross-mod call; returns the result as a value of the caller."""
        host = self.host
        caller = host.mods.get(cc.caller_id)
        owner = host.mods.get(cc.owner_id)
        if caller is None or caller.generation != cc.caller_gen or caller.box is None:
            raise ModError("cross-mod call from a mod that is no longer running")
        if owner is None or owner.generation != cc.owner_gen or owner.state != "loaded":
            raise ModError(f"mod '{cc.owner_id}' is not loaded any more "
                           "(it was reloaded, stopped or removed)")
        if owner.id in host.call_stack:
            raise ModError(f"cannot call into mod '{owner.id}' while it is running "
                           "(re-entrant cross-mod call refused)")
        if len(host.call_stack) >= host.limits.max_call_depth:
            raise ModError(f"cross-mod calls nested more than {host.limits.max_call_depth} deep")
        if cc.token is not None:
            fn = owner.exports.get(cc.token)
        else:
            fn = owner.box.walk(owner.public, *cc.path)
        if lua_type(fn) != "function":
            raise ModError(f"GetMod('{owner.id}'): that field is no longer a function")
        # The owner is idle (not on the call stack), so functions can be
        # wrapped in its runtime directly; the caller is inside this bridge
        # call, so functions going back to it are left raw for its Lua side.
        deadline = caller.deadline()   # copies are host work on the caller's behalf
        conv = tuple(self.transfer(a, caller, owner, at_rest=True, deadline=deadline) for a in args)
        # Bad arguments are the caller's fault: the error is raised in the
        # caller (and counts there if uncaught); the owner's window is untouched.
        # It runs within what is left of the caller's budget too, so one
        # frame never gets the caller's budget plus the owner's.
        ok, result, err = owner.call_detail(fn, *conv, what=f"a call from mod '{caller.id}'",
                                            blame=caller.id, cap=caller.cpu_left())
        if not ok:
            first = (err or "the call failed").split("\n", 1)[0]
            raise ModError(f"GetMod('{owner.id}'): {first}")
        return LuaFixup(self.transfer(result, owner, caller, at_rest=False, deadline=caller.deadline()))

    def transfer(self, value: Any, src: "Mod", dst: "Mod", at_rest: bool, depth: int = 0,
                 budget: list | None = None, deadline: float | None = None) -> Any:
        """Copy a Lua value of `src` into the runtime of `dst`.

        Functions become CrossCall proxies: wrapped in dst when dst is idle
        (`at_rest`), raw otherwise (the result is then a LuaFixup).
        """
        limits = self.host.limits
        if budget is None:
            budget = [limits.transfer_items]
        t = lua_type(value)
        if t is None:
            if isinstance(value, SCALARS):
                if isinstance(value, (str, bytes)) and len(value) > 256:
                    dst.room(string_cost(value))
                return value
            raise TransferError("a host object cannot be passed between mods")
        if t == "function":
            cc = CrossCall(self, dst, src, fn=value)
            return dst.wrap(cc) if at_rest else dst.bridge_function(cc)
        if t != "table":
            raise TransferError(f"a Lua {t} cannot be passed between mods")
        if depth >= limits.transfer_depth:
            raise TransferError(f"table nested deeper than {limits.transfer_depth} levels "
                                "(or a cycle) cannot be passed between mods")
        # Read the entries first, then check dst has room for the whole
        # table before lupa builds it (its table building is unprotected).
        entries = []
        cost = TABLE_BYTES
        for k, v in value.items():
            budget[0] -= 1
            if budget[0] % CHECK_EVERY == 0:
                past_deadline(deadline, "copying values between mods")
            if budget[0] < 0:
                raise TransferError(f"more than {limits.transfer_items} values "
                                    "cannot be passed between mods")
            if lua_type(k) is not None:
                raise TransferError("table keys passed between mods must be strings, "
                                    "numbers or booleans")
            cost += HASH_NODE_BYTES
            if isinstance(k, (str, bytes)):
                cost += string_cost(k)
            if isinstance(v, (str, bytes)):
                cost += string_cost(v)
            entries.append((k, v))
        dst.room(cost)
        out = dst.lua.table()
        for k, v in entries:
            out[k] = self.transfer(v, src, dst, at_rest, depth + 1, budget, deadline)
        return out
