"""Sandbox escapes (globals, metatables, loaders, string and FFI tricks), each tried from inside a
real mod.  "Survives" is checked
by a bystander mod that keeps ticking next to the hostile one.
"""

from __future__ import annotations

import os

import pytest
from lupa import luajit21 as lupa

from modhost_util import frames, lua_eval, make_host, mods_dir, write_mod  # noqa: F401

from host.runtime.sandbox import new_runtime

BYSTANDER = """
    ticks = 0
    registerForEvent("onUpdate", function() ticks = ticks + 1 end)
    return { ticks = function() return ticks end }
"""


def assert_bystander_ticking(host, n):
    mod = host.mods["bystander"]
    assert mod.state == "loaded"
    ok, ticks = mod.call(mod.public.ticks)
    assert ok and ticks == n


def probe(make_host, body, **kw):
    """Load a hostile mod next to a bystander, run 3 frames, return (host, printed lines)."""
    host, console = make_host({"hostile": body, "bystander": BYSTANDER}, **kw)
    frames(host, 3)
    assert_bystander_ticking(host, 3)
    return host, console.mod_lines("hostile")


# 1 -- OS commands, environment, exit, file removal -------------------------------------

def test_class1_no_os_commands_env_exit_or_file_removal(make_host, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    host, lines = probe(make_host, f"""
        local keys = {{}}
        for k in pairs(os) do keys[#keys + 1] = k end
        table.sort(keys)
        print("os: " .. table.concat(keys, ","))
        for _, name in ipairs {{ "execute", "getenv", "exit", "remove", "rename", "tmpname", "setlocale" }} do
          print(name, os[name])
        end
        print("io", type(io), "popen", pcall(io.popen, "ls"))
        print(pcall(function() os.execute("touch /tmp/pwned") end))
        print(pcall(function() os.remove({str(victim)!r}) end))
        print(pcall(function() os.exit(1) end))
    """)
    assert lines[0] == "os: clock,date,difftime,time"
    assert lines[1:8] == [f"{n}\tnil" for n in
                          ("execute", "getenv", "exit", "remove", "rename", "tmpname", "setlocale")]
    # io exists as CET has it (files in the mod's folder), without popen
    assert lines[8].startswith("io\ttable\tpopen\tfalse\t") and "not available" in lines[8]
    assert all(l.startswith("false\t") and "attempt to call field" in l for l in lines[9:12])
    assert victim.read_text() == "keep me"
    assert host.mods["hostile"].state == "loaded"


# 2 -- files outside the mod folder ---------------------------------------------------------

def test_class2_files_outside_the_mod_folder_are_refused(make_host, mods_dir, tmp_path):
    secret = tmp_path / "secret.lua"
    secret.write_text('return "secret"')
    write_mod(mods_dir, "other", 'return {}', files={"private.lua": 'return "private"'})
    folder = write_mod(mods_dir, "hostile", "", files={"ok.lua": 'return "mine"',
                                                         "sub/deep.lua": 'return "deep"'})
    os.symlink(secret, folder / "link.lua")
    (folder / "init.lua").write_text(f"""
        local function try(f, ...) local ok, err = pcall(f, ...) print(ok, err) end
        try(dofile, {str(secret)!r})
        try(dofile, "../other/private.lua")
        try(dofile, "sub/../../other/private.lua")
        print(pcall(loadfile, "link.lua"))
        try(dofile, "link.lua")
        print(pcall(require, "link"))
        try(dofile, "init.toml")
        print(pcall(require, "..other.private"))
        print(pcall(require, "other/private"))
        print(dofile("ok.lua"), require("sub.deep"), loadfile("sub/deep.lua")())
    """)
    write_mod(mods_dir, "bystander", BYSTANDER)
    host, console = make_host()
    lines = console.mod_lines("hostile")
    assert "absolute paths are refused" in lines[0]
    assert "'..', '.' and empty path parts are refused" in lines[1]
    assert "'..', '.' and empty path parts are refused" in lines[2]
    assert lines[3].startswith("true\tnil\t") and "outside the mod folder (symlink)" in lines[3]
    assert "outside the mod folder (symlink)" in lines[4]
    assert "outside the mod folder (symlink)" in lines[5]
    assert "only .lua files can be loaded" in lines[6]
    assert "not a valid module name" in lines[7]
    # a slash path is a valid name (CET), resolved inside the mod's own folder only
    assert "module 'other/private' not found" in lines[8]
    # require gives nil and the reason as CET's does; the others raise
    assert all(l.startswith("false\t") for l in lines[0:3] + [lines[4], lines[6]])
    assert all(l.startswith("true\tnil\t") for l in [lines[5]] + lines[7:9])
    assert lines[9] == "mine\tdeep\tdeep"
    assert host.mods["bystander"].state == "loaded"


# 3, 4 -- native code and the FFI ------------------------------------------------------------

def test_class3_and_4_no_native_code_and_no_ffi(make_host):
    host, lines = probe(make_host, """
        print(package, _G.package, loadlib, ffi, jit, debug)
        for _, name in ipairs { "ffi", "jit", "jit.util", "string.buffer", "table.new", "socket.core", "io" } do
          local ok, m, err = pcall(require, name)
          print(name, ok, tostring(m), (tostring(err):gsub("\\n.*", "")))
        end
        local found = {}
        local function walk(t, depth, seen)
          if depth > 6 or seen[t] then return end
          seen[t] = true
          for k, v in pairs(t) do
            if type(v) == "cdata" or k == "ffi" or k == "loadlib" or k == "preload" or k == "cpath" then
              found[#found + 1] = tostring(k)
            end
            if type(v) == "table" then walk(v, depth + 1, seen) end
          end
        end
        walk(_G, 0, {})
        print("reachable: " .. #found)
    """)
    assert lines[0] == "nil\tnil\tnil\tnil\tnil\tnil"
    for line in lines[1:8]:
        name, ok, m, err = line.split("\t")
        assert ok == "true" and m == "nil" and f"module '{name}' not found" in err
    assert lines[8] == "reachable: 0"


# 5 -- bytecode -------------------------------------------------------------------------------

def real_bytecode() -> bytes:
    """Genuine LuaJIT bytecode, made in a separate unsandboxed runtime."""
    rt = lupa.LuaRuntime(encoding=None)
    return rt.execute('return string.dump(function() return "from bytecode" end)')


def test_class5_bytecode_is_refused(make_host, mods_dir):
    bc = real_bytecode()
    assert bc[:1] == b"\x1b"
    literal = "'" + "".join(f"\\{b}" for b in bc) + "'"
    write_mod(mods_dir, "hostile", f"""
        local bc = {literal}
        print(load(bc))
        print(loadstring(bc))
        print(load(bc, "x", "b"))
        print(load(bc, "x", "bt"))
        local i = 0
        print(load(function() i = i + 1 if i == 1 then return bc end end))
        print(pcall(dofile, "compiled.lua"))
        print(pcall(require, "compiled"))
    """, files={"compiled.lua": bc})
    write_mod(mods_dir, "bystander", BYSTANDER)
    host, console = make_host()
    lines = console.mod_lines("hostile")
    assert len(lines) == 7
    for line in lines[:5]:
        assert line.startswith("nil\t"), line
    assert "precompiled bytecode is not allowed" in lines[0]
    assert "precompiled bytecode is not allowed" in lines[2]
    assert "precompiled bytecode is not allowed" in lines[3]
    assert "precompiled bytecode" in lines[4]
    assert lines[5].startswith("false\t") and "precompiled bytecode" in lines[5]
    assert lines[6].startswith("true\tnil\t") and "precompiled bytecode" in lines[6]
    assert "from bytecode" not in "\n".join(lines)


# 6 -- string.dump ----------------------------------------------------------------------------

def test_class6_string_dump_is_unreachable(make_host):
    host, lines = probe(make_host, """
        print(string.dump, ("").dump, ("x").dump)
        local mt = getmetatable("")
        print(type(mt), mt)
        print(pcall(function() return mt.__index end))
        print(pcall(function() return mt.__index.dump end))
        print(rawget(string, "dump"))
    """)
    assert lines[0] == "nil\tnil\tnil"
    assert lines[1] == "string\tlocked"
    assert lines[2] == "true\tnil"          # indexing the string "locked" finds nothing
    assert lines[3].startswith("false\t")
    assert lines[4] == "nil"


# 7 -- debug, hooks, jit ----------------------------------------------------------------------

def test_class7_no_debug_hooks_or_jit_control(make_host):
    host, lines = probe(make_host, """
        print(debug, jit, _G.debug, getfenv, setfenv)
        print(pcall(require, "debug"))
        print(pcall(collectgarbage, "stop"))
        print(pcall(collectgarbage, "setpause", 1000))
        print(type(collectgarbage("count")))
    """)
    assert lines[0] == "nil\tnil\tnil\tnil\tnil"
    assert lines[1].startswith("true\tnil\t") and "not found" in lines[1]
    assert lines[2].startswith("false\t") and "collectgarbage('stop') is not allowed" in lines[2]
    assert lines[3].startswith("false\t") and "not allowed" in lines[3]
    assert lines[4] == "number"


def test_class7_the_jit_is_on_in_sandboxed_runtimes(make_host):
    # the watchdog no longer needs a debug hook (instrumented
    # code ticks it), so sandboxed mods run compiled, with every optimization.
    host, _ = make_host({"m": "return 1"})
    status = list(host.mods["m"].lua.eval("{ jit.status() }").values())
    assert status[0] is True
    assert "fold" in status and "loop" in status
    assert host.mods["m"].env.jit is None


# 8 -- environment escape ------------------------------------------------------------------------

def test_class8_globals_are_per_mod(make_host):
    host, console = make_host({
        "a": 'shared_secret = "a-secret" _G.also = 1 function leaked() return "a" end',
        "b": """
            print(shared_secret, also, leaked, getfenv, setfenv, module)
            print(_G == _G._G, rawequal(_G, getmetatable(_G)))
            local count = 0
            for _ in pairs(_G) do count = count + 1 end
            print(count < 160)   -- the sandbox API plus CET's globals and stand-ins
        """,
    })
    lines = console.mod_lines("b")
    assert lines[0] == "nil\tnil\tnil\tnil\tnil\tnil"
    assert lines[1] == "true\tfalse"
    assert lines[2] == "true"
    # and the first mod's globals are intact
    assert lua_eval(host, "a", "shared_secret") == "a-secret"


# 9 -- shared string metatable and library tables -------------------------------------------------

def test_class9_library_tables_are_the_mods_own_copies(make_host):
    """A mod may rewrite its string/table/math/os/bit/coroutine/io tables (CET mods
    extend them); the host's Lua in that runtime keeps what it captured, the string
    metatable stays locked, host API tables stay read-only, and other mods see the
    originals."""
    host, console = make_host({
        "hostile": """
            local gsub, write = string.gsub, io.write
            local function try(f) local ok, err = pcall(f) print(ok, (gsub(tostring(err), "^.-:%d+: ", ""))) end
            function string:split(sep)
              local out = {}
              for piece in string.gmatch(self, "([^" .. sep .. "]+)") do out[#out + 1] = piece end
              return out
            end
            table.unpack = table.unpack or unpack
            print(#("a,b,c"):split(","), table.unpack({ 7, 8 }))
            -- now break every library function the host's own Lua might use
            for _, lib in ipairs { string, table, math, os, bit, coroutine, io } do
              for k in pairs(lib) do lib[k] = function() error("hijacked " .. k) end end
            end
            rawset(string, "upper", function() return "pwned" end)
            math.pi = 4
            print(("abc"):upper(), math.pi)
            try(function() getmetatable("").__index = {} end)
            try(function() setmetatable("", {}) end)
            try(function() json.encode = nil end)
            try(function() Cron.After = nil end)
            try(function() spdlog.info = nil end)
            -- the host's Lua in this runtime: print, spdlog, json, Cron, the log's io.write
            print("print", 1, 2.5, nil, true)
            spdlog.info("%d items of %s", 3, "x")
            print(json.encode({ a = { 1, 2 } }), json.decode('{"b":[3]}').b[1])
            Cron.After(0, function() print("cron ran") end)
            write("io line\\n")
        """,
        "bystander": 'registerForEvent("onUpdate", function() print(("ok"):upper(), string.upper("ok"), math.pi, table.concat({1, 2}, "+")) end)',
    })
    host.update(0.01)
    lines = console.mod_lines("hostile")
    assert lines[0] == "3\t7\t8"
    assert lines[1] == "pwned\t4"
    for line in lines[2:7]:
        assert line.startswith("false\t"), line
    assert "attempt to index a string value" in lines[2]
    assert "read-only" in lines[4] and "read-only" in lines[5] and "read-only" in lines[6]
    assert lines[7] == "print\t1\t2.5\tnil\ttrue"
    assert lines[8] == "3 items of x"
    assert lines[9] == '{"a":[1,2]}\t3'
    assert lines[10] == "io line"
    assert "cron ran" in lines
    assert host.mods["hostile"].state == "loaded"
    assert console.mod_lines("bystander") == ["OK\tOK\t3.1415926535898\t1+2"]


# 10 -- host (Python) objects ----------------------------------------------------------------------

def test_class10_no_python_object_is_reachable(make_host):
    host, lines = probe(make_host, """
        local kinds, seen = {}, {}
        local function walk(v, depth)
          local t = type(v)
          -- `db` is an lsqlite3-like userdata handle made by the host's Lua
          if v ~= db then kinds[t] = true end
          if t == "table" and not seen[v] and depth < 8 then
            seen[v] = true
            for k, x in pairs(v) do walk(k, depth + 1) walk(x, depth + 1) end
          end
        end
        walk(_G, 0)
        print(kinds.userdata, kinds.cdata, python, eval, builtins)
        print(pcall(function() return print.__globals__ end))
        print(pcall(function() return db.exec.__class__ end))
        print(getmetatable(print), getmetatable(db.exec), getmetatable(registerForEvent))
    """)
    assert lines[0] == "nil\tnil\tnil\tnil\tnil"
    assert lines[1].startswith("false\t") and "attempt to index" in lines[1]
    assert lines[2].startswith("false\t") and "attempt to index" in lines[2]
    assert lines[3] == "nil\tnil\tnil"


def test_class10_attribute_filter_denies_python_introspection():
    # Second line of defence: even a Python object smuggled into a runtime
    # created with the production flags shows no attributes and no eval.
    rt = new_runtime(16)
    g = rt.globals()
    g.obj = object()
    g.fn = len
    for expr in ("obj.__class__", "fn.__globals__", "fn.__self__", "obj.__dict__"):
        with pytest.raises((lupa.LuaError, AttributeError), match="not accessible from mods"):
            rt.eval(expr)
        # inside Lua it is an ordinary, catchable error
        ok, err = rt.eval(f"pcall(function() return {expr} end)")
        assert ok is False and "not accessible from mods" in str(err)
    with pytest.raises((lupa.LuaError, AttributeError), match="not accessible from mods"):
        rt.execute("obj.x = 1")
    assert rt.eval("python.eval") is None and rt.eval("python.builtins") is None


def test_class10_lupa_errors_never_hand_mods_a_python_exception(make_host):
    # Regression: lupa raised the UnicodeDecodeError *object* into Lua when an
    # argument was not valid UTF-8; the mod's pcall received a userdata.
    host, lines = probe(make_host, r"""
        for _, f in ipairs { function() return db:exec("SELECT '\255'") end,
                             function() return registerHotkey("\255", "x", print) end,
                             function() return GetMod("\255") end } do
          local ok, err = pcall(f)
          print(ok, type(err), err)
        end
    """)
    assert len(lines) == 3
    for line in lines:
        ok, kind, msg = line.split("\t", 2)
        assert (ok, kind) == ("false", "string")
        assert "must be valid UTF-8" in msg


def test_class10_providers_cannot_leak_raw_objects(make_host):
    from host.runtime.convert import TransferError
    host, console = make_host({"m": "return 1"})
    mod = host.mods["m"]
    with pytest.raises(TransferError):
        mod.expose("leak", object())
    # a provider function returning a raw object gives the mod an error, not the object
    mod.expose("give", mod.wrap(lambda: object()))
    ok, res = mod.call(mod.box.load_chunk("return pcall(give)", "=t"))
    assert ok and res is False


# 14 -- finalizers ------------------------------------------------------------------------------

def test_class14_no_finalizer_tricks(make_host):
    host, lines = probe(make_host, """
        print(newproxy)
        ran = false
        setmetatable({}, { __gc = function() ran = true while true do end end })
        collectgarbage()
        collectgarbage()
        print(ran)
    """)
    assert lines == ["nil", "false"]
    assert host.mods["hostile"].state == "loaded"


# 16 -- another mod --------------------------------------------------------------------------------

def test_class16_getmod_is_a_read_only_view(make_host):
    host, console = make_host({
        "owner": """
            local n = 0
            registerForEvent("onUpdate", function() n = n + 1 end)
            return { name = "owner", nested = { list = { 1, 2, 3 } },
                     count = function() return n end,
                     greet = function(who) return "hello " .. who end }
        """,
        "hostile": """
            registerForEvent("onInit", function()
              local o = GetMod("owner")
              local function try(f) local ok, err = pcall(f) print(ok, (tostring(err):gsub("^.-:%d+: ", ""))) end
              try(function() o.name = "pwned" end)
              try(function() o.nested.list[1] = 99 end)
              try(function() rawset(o, "name", "x") end)
              try(function() setmetatable(o, {}) end)
              try(function() o.count = function() return -1 end end)
              print(o.name, o.nested.list[1], o.greet("you"), GetMod("nobody"))
              local keys = {}
              for k in pairs(o) do keys[#keys + 1] = k end
              table.sort(keys)
              print(table.concat(keys, ","))
              local items = {}
              for i, v in ipairs(o.nested.list) do items[#items + 1] = v end
              print(table.concat(items, ","))
            end)
        """,
    })
    frames(host, 2)
    lines = console.mod_lines("hostile")
    for line in lines[:5]:
        assert line.startswith("false\t") and "read-only" in line or "protected metatable" in line, line
    assert lines[5] == "owner\t1\thello you\tnil"
    assert lines[6] == "count,greet,name,nested"
    assert lines[7] == "1,2,3"
    owner = host.mods["owner"]
    assert lua_eval(host, "owner", "(function() return 1 end)()") == 1
    ok, n = owner.call(owner.public.count)
    assert ok and n == 2
    assert owner.public.name == "owner" and owner.public.nested.list[1] == 1


def test_class16_other_mods_files_and_db_are_out_of_reach(make_host, mods_dir):
    write_mod(mods_dir, "owner", 'db:exec("CREATE TABLE IF NOT EXISTS s (v)") db:exec("INSERT INTO s VALUES (?)", "secret")')
    host, console = make_host({"hostile": """
        print(pcall(dofile, "../owner/init.lua"))
        print(db:exec("ATTACH DATABASE 'mods/owner/db.sqlite3' AS o"), db:errmsg())
        print(db:exec("ATTACH DATABASE ? AS o", "../owner/db.sqlite3"), db:errmsg())
        local n = 0
        for name in db:urows("SELECT name FROM sqlite_master") do n = n + 1 end
        print(n)
        print(io.open("../owner/db.sqlite3"))
        print(pcall(io.lines, "../owner/init.lua"))
    """})
    lines = console.mod_lines("hostile")
    assert lines[0].startswith("false\t") and "refused" in lines[0]
    assert lines[1].startswith("23\t") and "not allowed for mods" in lines[1]   # sqlite3.AUTH
    assert lines[2].startswith("23\t") and "not allowed for mods" in lines[2]
    assert lines[3] == "0"
    assert lines[4].startswith("nil\t") and "'..' is refused" in lines[4]
    assert lines[5].startswith("false\t") and "'..' is refused" in lines[5]
