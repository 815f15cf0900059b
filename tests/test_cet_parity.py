"""CET parity: io in the mod folder, slash requires, bit32/table.unpack, the Lua dialect.

Each test is a CET-style mod run in a real host (real lupa, real files, real SQLite).
"""

from __future__ import annotations

import os

from modhost_util import make_host, mods_dir, read_log, write_mod  # noqa: F401


def test_cet_config_pattern_with_io(make_host, mods_dir):
    # The "load config.json with io.open" pattern of almost every CET mod.
    write_mod(mods_dir, "cfg", r"""
        local config = { volume = 5, name = "default" }
        local function load()
          local f = io.open("config.json", "r")
          if not f then return false end
          local ok, data = pcall(json.decode, f:read("*a"))
          f:close()
          if ok then config = data end
          return ok
        end
        local function save()
          local f = assert(io.open("config.json", "w"))
          f:write(json.encode(config))
          f:close()
        end
        print(load(), config.volume)
        config.volume = 9
        save()
        print(load(), config.volume, config.name)
        local f = io.open("data/notes.txt", "w")            -- data/ exists: writes work in subfolders
        f:write("one\n", "two\n", 3, "\n")
        f:close()
        local lines = {}
        for line in io.lines("data/notes.txt") do lines[#lines + 1] = line end
        print(table.concat(lines, ","))
        local g = io.open("data\\notes.txt")                 -- Windows-style separators are fine
        print(g:read("l"), g:read("n"), g:seek("cur"), g:seek("end"), g:read("a"), g:read("l"))
        g:seek("set", 4)
        print(g:read(3), g:read(0), io.type(g))
        g:close()
        print(io.type(g), pcall(g.read, g))
        local a = io.open("data/notes.txt", "a")
        a:write("four")
        a:close()
        print(#io.open("data/notes.txt"):read("a"))
        for _, e in ipairs(dir("data")) do print(e.name, e.type) end
    """, files={"data/.keep": ""})
    host, console = make_host()
    lines = console.mod_lines("cfg")
    assert lines[0] == "false\t5"
    assert lines[1] == "true\t9\tdefault"
    assert lines[2] == "one,two,3"
    assert lines[3] == "one\tnil\t4\t10\t\tnil"         # "n" fails on "two"; position kept
    assert lines[4] == "two\t\tfile"
    assert lines[5].startswith("closed file\tfalse\t") and "closed file" in lines[5]
    assert lines[6] == "14"
    assert lines[7:] == [".keep\tfile", "notes.txt\tfile"]
    assert (mods_dir / "cfg" / "config.json").read_text() == '{"name":"default","volume":9}'


def test_io_cannot_leave_the_mod_folder(make_host, mods_dir, tmp_path):
    # `..`, absolute paths and symlinks out are refused.
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    write_mod(mods_dir, "other", "return {}", files={"mine.txt": "other's"})
    folder = write_mod(mods_dir, "hostile", "")
    os.symlink(outside, folder / "link.txt")
    os.symlink(tmp_path, folder / "linkdir")
    (folder / "init.lua").write_text(f"""
        local function try(...) print(io.open(...)) end
        try({str(outside)!r})
        try("../other/mine.txt")
        try("sub/../../other/mine.txt", "w")
        try("link.txt")
        try("link.txt", "w")
        try("linkdir/outside.txt")
        try("db.sqlite3")
        try("hostile.log", "a")
        try("C:/Windows/win.ini")
        print(pcall(io.open, "x.txt", "rw"))
        print(pcall(io.lines, "../other/mine.txt"))
        print(dir("..") == nil, pcall(dir, "../other"))
        print(pcall(dofile, "../other/init.lua"), io.popen)
    """)
    host, console = make_host()
    lines = console.mod_lines("hostile")
    assert "absolute paths are refused" in lines[0] and lines[0].startswith("nil\t")
    assert "'..' is refused" in lines[1] and "'..' is refused" in lines[2]
    assert all("leads outside" in l or "symbolic links" in l for l in lines[3:6]), lines[3:6]
    assert "not reachable through io" in lines[6] and "not reachable through io" in lines[7]
    assert "absolute paths are refused" in lines[8]
    assert lines[9].startswith("false\t") and "invalid mode" in lines[9]
    assert lines[10].startswith("false\t") and "'..' is refused" in lines[10]
    assert lines[11] == "true\ttrue\tnil"       # dir() outside the folder: nil, as in CET
    assert lines[12].startswith("false\t")
    assert outside.read_text() == "secret"
    assert (mods_dir / "other" / "mine.txt").read_text() == "other's"
    assert host.mods["hostile"].state == "loaded"


def test_io_quotas(make_host, mods_dir):
    from host.limits import Limits
    write_mod(mods_dir, "q", """
        local files = {}
        local ok, err = pcall(function() for i = 1, 10 do files[i] = assert(io.open("f" .. i, "w")) end end)
        print(ok, err, #files)
        for _, f in ipairs(files) do f:close() end
        local f = io.open("big.bin", "w")
        print(pcall(f.write, f, ("x"):rep(3000)))
        print(pcall(f.write, f, ("x"):rep(2000)))
        f:close()
        local g = io.open("big2.bin", "w")
        print(pcall(g.write, g, ("y"):rep(2000)), pcall(g.write, g, ("y"):rep(2000)))
        g:close()
        print(io.open("big.bin", "w"):write("small") ~= nil)   -- truncating gives the bytes back
    """)
    host, console = make_host(limits=Limits(io_max_open_files=4, io_max_file_bytes=4000,
                                            io_max_folder_bytes=6000))
    lines = console.mod_lines("q")
    assert lines[0].startswith("false\t") and "more than 4 files open" in lines[0] and lines[0].endswith("\t4")
    assert lines[1].startswith("true\t")
    assert lines[2].startswith("false\t") and "per-file limit" in lines[2]
    assert lines[3].startswith("true\t") and "false\t" in lines[3] and "per-mod folder limit" in lines[3]
    assert lines[4] == "true"
    assert (mods_dir / "q" / "big.bin").stat().st_size <= 4000


def test_files_are_closed_when_the_mod_is_reloaded(make_host, mods_dir):
    write_mod(mods_dir, "r", 'handle = io.open("keep.txt", "w") handle:write("x")')
    host, _ = make_host()
    fio = host.mods["r"].io
    assert fio.open_count() == 1
    (mods_dir / "r" / "init.lua").write_text('print(io.open("keep.txt"):read("a"))')
    host.request_reload("r")
    host.update(0.01)
    assert fio.open_count() == 0                      # closed (and flushed) at unload
    assert (mods_dir / "r" / "keep.txt").read_text() == "x"


def test_require_paths_like_cet(make_host, mods_dir):
    write_mod(mods_dir, "req", r"""
        local a = require("modules/util")
        local b = require("modules.util")
        local c = require("modules\\util")
        local d = require("modules/util.lua")
        print(a == b, b == c, c == d, LOADS)
        print(require("ui").title, require("ui/widgets/button").label)
        print(dofile("modules/util").name, loadfile("modules/util.lua")().name)
        print(pcall(require, "../req/init"))
        print(pcall(require, "nothing/here"))
    """, files={
        "modules/util.lua": "LOADS = (LOADS or 0) + 1 return { name = 'util' }",
        "ui/init.lua": "return { title = 'UI' }",
        "ui/widgets/button.lua": "return { label = 'OK' }",
    })
    host, console = make_host()
    lines = console.mod_lines("req")
    assert lines[0] == "true\ttrue\ttrue\t1"          # one file, one module
    assert lines[1] == "UI\tOK"
    assert lines[2] == "util\tutil"
    # as CET's require: nil and the reason, no error
    assert lines[3].startswith("true\tnil\t") and "not a valid module name" in lines[3]
    assert lines[4].startswith("true\tnil\t") and "module 'nothing/here' not found" in lines[4]


def test_bit32_and_lua52_additions(make_host):
    host, console = make_host({"b": """
        print(bit32.band(0xff, 0x0f), bit32.bor(1, 2), bit32.bxor(3, 1), bit32.lshift(1, 4),
              bit32.rshift(256, 4), bit32.bnot(0), bit32.extract(0xabcd, 4, 8),
              bit32.replace(0, 5, 4, 3), bit32.btest(2, 3), bit32.lrotate(1, 1))
        print(table.unpack({ 1, 2, 3 }), table.pack(4, nil, 6).n, rawlen({ 1, 2 }), rawlen("abc"))
        print(pcall(bit32.extract, 1, 30, 4))
    """})
    lines = console.mod_lines("b")
    assert lines[0] == "15\t3\t2\t16\t16\t-1\t188\t80\ttrue\t2"    # bnot(0) = -1: LuaJIT's bit, as in CET
    assert lines[1] == "1\t3\t2\t3"
    assert lines[2].startswith("false\t") and "non-existent bits" in lines[2]


def test_cet_versions_and_mod_list(make_host):
    host, console = make_host({"v": """
        registerForEvent("onInit", function()
          local w, h = GetDisplayResolution()
          print(GetVersion():match("^v%d+%.%d+") ~= nil, w, h)
          local mods = GetMods()
          table.sort(mods)
          print(table.concat(mods, ","))
        end)
    """, "w": "return {}"})
    assert console.mod_lines("v") == ["true\t1920\t1080", "v,w"]


def test_unpublished_cyberpunk_names_fail_with_one_clear_line(make_host):
    host, console = make_host({"cp": """
        registerForEvent("onInit", function()
          local player = Game.GetPlayer()
        end)
        print(pcall(function() return TweakDB:GetFlat("Items.money") end))
        print(pcall(function() return NewObject("gameItemID") end))
        print(pcall(Observe, "PlayerPuppet", "OnAction", function() end))
        print(pcall(Override, "Market", "Buy", function() end))
    """})
    lines = console.mod_lines("cp")
    assert "`TweakDB.GetFlat` is a Cyberpunk 2077 API; this game publishes nothing" in lines[0]
    assert "`NewObject` is a Cyberpunk 2077 API" in lines[1]
    assert "`PlayerPuppet` is a Cyberpunk 2077 class" in lines[2]
    assert "'Market.Buy' is not a hookable function of this game" in lines[3]
    log = read_log(host, "cp")
    assert "mods/cp/init.lua:3: `Game.GetPlayer` is a Cyberpunk 2077 API" in log


def test_lua_dialect_is_cets_luajit_with_lua52compat(make_host):
    # CET's LuaJIT is built with LUAJIT_ENABLE_LUA52COMPAT; so is Relic's (host/setup/lupa_build.py).
    host, console = make_host({"d": """
        local t = setmetatable({}, { __pairs = function(self) return function(_, k)
          if not k then return 1, "one" end end, self, nil end,
          __len = function() return 42 end })
        local seen = {}
        for k, v in pairs(t) do seen[#seen + 1] = k .. "=" .. v end
        print(#t, table.concat(seen, ","), select("#", coroutine.running()))
        local id = function(...) return ... end
        local v = id
        ("ambiguous syntax compiles")      -- a call, as in Lua 5.2 (5.1 refused to compile it)
        print(v)
        for i = 1, 3 do
          if i == 2 then goto continue end
          print("goto", i)
          ::continue::
        end
        print(#json, #string > 0 or #string == 0, #Rules.list)
    """}, load=False)
    host.expose("Rules", {"list": [1, 2, 3]})
    host.load()
    assert console.mod_lines("d") == ["42\t1=one\t2", "ambiguous syntax compiles", "goto\t1", "goto\t3",
                                      "0\ttrue\t3"]


def test_abandoned_io_lines_iterators_do_not_exhaust_the_file_quota(make_host, mods_dir):
    from host.limits import Limits
    write_mod(mods_dir, "l", """
        for i = 1, 20 do
          for line in io.lines("data.txt") do break end     -- left before the end: still open
        end
        local f = assert(io.open("data.txt"))                -- the oldest io.lines handles make room
        print(f:read("l"), pcall(io.open, "x1", "w"))
    """, files={"data.txt": "a\nb\n"})
    host, console = make_host(limits=Limits(io_max_open_files=4))
    (line,) = console.mod_lines("l")
    assert line.startswith("a\ttrue\t")
    assert host.mods["l"].io.open_count() <= 4


def test_io_open_of_a_fifo_in_the_mod_folder_does_not_block(make_host, mods_dir):
    # A hostile mod folder may ship a FIFO: opening it for reading must not hang the frame.
    folder = write_mod(mods_dir, "f", """
        print(io.open("pipe"))
        print(io.open("pipe", "w"))
        print(pcall(io.lines, "pipe"))
    """)
    os.mkfifo(folder / "pipe")
    host, console = make_host()
    lines = console.mod_lines("f")
    assert lines[0].startswith("nil\t") and "not a regular file" in lines[0]
    assert lines[1].startswith("nil\t")                   # no reader: refused, not blocked
    assert lines[2].startswith("false\t") and "not a regular file" in lines[2]
