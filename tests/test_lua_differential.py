"""Differential test: the same Lua runs the same in a sandboxed mod, a trusted mod and plain LuaJIT.

The corpus (fetched by `make lua-corpus`, which `make test` runs; cached under
the Relic cache by host/setup/lua_corpus.py, nothing committed) is pure-Lua
code from Debian packages: dkjson (with its own test suite, jsontest.lua),
inspect, penlight (39 modules), argparse, markdown, basexx, binaryheap, fifo
and say; plus the project's own Lua: lua/, host/runtime/lua/, mods/ and
examples/.  Three kinds of checks run over it, in one init.lua per mode:

- every file is compiled with loadstring (the sandbox compiles it again with
  its watchdog checks): same result, same syntax error text;
- every corpus module is required and its exported table listed (keys and
  value types);
- drivers call the libraries (dkjson's own tests, JSON round trips, inspect
  dumps, markdown to HTML, argparse parses and help texts, penlight's
  stringx/tablex/List/pretty/template/OrderedMap/Set, basexx, binaryheap,
  fifo, say) and print what they return.

The output is compared driver by driver.  A difference fails the test unless
it is one of the sandbox's documented refusals (docs/MODDING.md, "What the
sandbox refuses"), listed in REFUSALS with the error text it must show.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from host.setup import lua_corpus
from lua_diff_util import run_mod, run_plain
from modhost_util import make_host, mods_dir  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
PROJECT_LUA = [ROOT / "lua", ROOT / "host" / "runtime" / "lua", ROOT / "mods", ROOT / "examples"]

# driver name -> Lua body (runs in the mod's / plain runtime's globals)
DRIVERS = {
    "require_missing": """
        print(pcall(require, "no_such_module_anywhere"))
    """,
    "dkjson_suite": """
        os.setlocale = function() return nil end   -- the suite's locale test: the same "cannot switch" everywhere
        dofile("corpus/tests/jsontest.lua")
    """,
    "dkjson": """
        local json = require("dkjson")
        local v = { name = "Vex", list = { 1, 2.5, -3, 1e300 }, nested = { deep = { true, false } },
                    text = "tab\\tquote\\"nl\\nuni\\226\\130\\172" }
        local s = json.encode(v, { keyorder = { "name", "list", "nested", "text" }, indent = true })
        print(s)
        local back, pos, err = json.decode(s)
        print(back.name, back.list[2], back.nested.deep[2], back.text == v.text, pos, err)
        print(json.decode('{"a": [1, 2, {"b": null}], "c": "\\\\u00e9"}').c)
        print(json.decode("[1, 2,"))
        print(pcall(json.encode, { f = print }))
        print(json.encode(setmetatable({}, { __jsontype = "array" })), json.encode(json.null))
    """,
    "inspect": """
        local inspect = require("inspect")
        local t = { 1, 2, "three", a = { b = { c = "deep" } }, [true] = false, [10] = 10 }
        t.self = t
        print(inspect(t))
        print(inspect(t, { depth = 1 }))
        print(inspect("quote\\"and\\nnewline"), inspect(1.5), inspect(nil))
        print(inspect(setmetatable({ x = 1 }, { __index = {} })))
        print(inspect({ f = 1, g = 2 }, { process = function(item, path) if path[#path] ~= "g" then return item end end }))
    """,
    "markdown": """
        local md = require("markdown")
        print(md([[
# Title

Some *emphasis*, **strong** and `code`, a [link](http://example.com "title").

* one
* two
    * nested

1. first
2. second

> quoted
> text

    indented code <&>

Line with trailing spaces  
and a break. Auto <http://example.org> and &amp; entities.
]]))
    """,
    "argparse": """
        local argparse = require("argparse")
        local p = argparse("relic", "A test parser.")
        p:argument("input", "Input file.")
        p:option("-o --output", "Output file.", "a.out")
        p:option("-I --include", "Include path."):count("*")
        p:flag("-v --verbose", "Verbose.")
        local args = p:parse({ "in.lua", "-I", "x", "-Iy", "--verbose" })
        print(args.input, args.output, table.concat(args.include, ","), args.verbose)
        print(p:get_help())
        print(p:pparse({ "--nope" }))
    """,
    "basexx_heap_fifo_say": """
        local basexx = require("basexx")
        local s = "\\0\\1\\2binary\\255\\254 text"
        for _, k in ipairs { "bit", "hex", "base32", "crockford", "base64", "url64", "z85" } do
          local enc = basexx["to_" .. k] and basexx["to_" .. k](k == "z85" and "12345678" or s)
          if enc then print(k, enc, basexx["from_" .. k](enc) == (k == "z85" and "12345678" or s)) end
        end
        local bh = require("binaryheap")
        local h = bh.minUnique()
        for i, v in ipairs { 5, 3, 9, 1, 7 } do h:insert(v, "p" .. i) end
        local out = {}
        while h:peek() do local payload, value = h:pop() out[#out + 1] = tostring(payload) .. "=" .. tostring(value) end
        print(table.concat(out, " "))
        local new_fifo = require("fifo")
        local q = new_fifo(1, 2, 3)
        q:push(4)
        print(q:length(), q:pop(), q:peek(), q:length())
        local say = require("say")
        say:set_namespace("en")
        say:set("greet", "Hello %s, you are %d")
        print(say("greet", { "Vex", 30 }), say("missing"))
    """,
    "penlight": """
        local stringx = require("pl.stringx")
        print(table.concat(stringx.split("a,b,,c", ","), "|"), stringx.strip("  x  "), stringx.startswith("hello", "he"))
        print(stringx.replace("a-b-c", "-", "+", 1), stringx.title("hello world"), stringx.shorten("abcdefghij", 5))
        local tablex = require("pl.tablex")
        print(tablex.size({ a = 1, b = 2 }), table.concat(tablex.keys({ x = 1 }), ","), tablex.deepcompare({ 1, { 2 } }, { 1, { 2 } }))
        print(table.concat(tablex.map(function(x) return x * 2 end, { 1, 2, 3 }), ","))
        local List = require("pl.List")
        local l = List({ 3, 1, 2 })
        l:sort()
        print(l, l:map(function(x) return x + 1 end), l:slice(2, 3), #l)
        local pretty = require("pl.pretty")
        print(pretty.write({ 1, 2, a = { b = "c" } }, ""))
        print(pretty.read("{ x = 1, y = { 2, 3 } }").y[2])
        local template = require("pl.template")
        print(template.substitute("Hi $(name)! # for i = 1, 3 do\\n$(i)\\n# end\\n", { name = "Vex", _parent = _G }))
        local OrderedMap = require("pl.OrderedMap")
        local m = OrderedMap()
        m:set("z", 1) m:set("a", 2)
        print(table.concat(m:keys(), ","))
        local Set = require("pl.Set")
        print(Set({ 1, 2, 3 }) * Set({ 2, 3, 4 }))
        print(require("pl.utils").split("x y  z")[3])
    """,
}

# Documented refusals (docs/MODDING.md, "What the sandbox refuses"): sections where a
# sandboxed mod may differ from LuaJIT, each with a witness -- a section and the error its
# sandboxed output must show -- so that only that refusal is excused.  The first entry holds
# for trusted mods too; the others only for sandboxed ones.
REFUSALS = [
    # require of a module that is missing gives nil, reason (CET's require) instead of an error:
    # penlight's pl.path probes LuaFileSystem with pcall(require, "lfs"), and so loads
    (r"require_missing|require pl\.(app|test)", ("require_missing", r"^true\tnil\tmodule 'no_such_module_anywhere' not found")),
    # penlight's pl.compat reads package.config when it loads: no `package` library in the
    # sandbox; every pl module needs pl.compat (and require gives nil, reason, as CET's does,
    # so pl.app even "loads" there without LuaFileSystem)
    (r"require pl(\..*)?|penlight", ("require pl.compat", r"attempt to index field 'package' \(a nil value\)")),
    # markdown.lua sets its environment with setfenv: no getfenv/setfenv in the sandbox
    (r"require markdown|markdown", ("require markdown", r"attempt to call global 'setfenv' \(a nil value\)")),
]


HARNESS = r"""
local function section(name) print("== " .. name) end
local function run(name, f)
  section(name)
  local ok, err = xpcall(f, function(e) return tostring(e) end)
  if not ok then print("ERROR " .. name .. ": " .. err) end
end
run("compile", function()
  for _, path in ipairs(FILES) do
    local fh = assert(io.open(path, "rb"))
    local src = fh:read("*a")
    fh:close()
    local f, err = loadstring(src, "@" .. path)
    print(path, f and "ok" or err)
  end
end)
for _, name in ipairs(MODULES) do
  run("require " .. name, function()
    local m, err = require(name)
    if m == nil then error(err, 0) end   -- a sandboxed require returns nil, reason (as CET's)
    if type(m) ~= "table" then print(type(m)) return end
    local keys = {}
    for k, v in pairs(m) do keys[#keys + 1] = tostring(k) .. ":" .. type(v) end
    table.sort(keys)
    print(table.concat(keys, " "))
  end)
end
"""


def _corpus_or_skip() -> Path:
    folder = lua_corpus.cached()
    if folder is None:
        pytest.skip("the Lua corpus is not fetched: run `make lua-corpus` (make test does)")
    return folder


def _build_tree(corpus: Path, dest: Path) -> tuple[list[str], list[str]]:
    """Copy the corpus and the project's Lua into dest; return (files to compile, modules)."""
    shutil.copytree(corpus / "lua", dest, dirs_exist_ok=True)          # requirable at the top
    shutil.copytree(corpus, dest / "corpus", dirs_exist_ok=True)
    files = sorted(p.relative_to(dest).as_posix() for p in (dest / "corpus").rglob("*.lua"))
    for src in PROJECT_LUA:
        for p in sorted(src.rglob("*.lua")):
            rel = Path("project") / p.relative_to(ROOT)
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dest / rel)
            files.append(rel.as_posix())
    modules = sorted(p.relative_to(corpus / "lua").with_suffix("").as_posix().replace("/", ".")
                     .removesuffix(".init") for p in (corpus / "lua").rglob("*.lua"))
    return files, modules


def _init_lua(files: list[str], modules: list[str]) -> str:
    lua_list = lambda xs: "{ " + ", ".join(f'"{x}"' for x in xs) + " }"   # noqa: E731
    body = [f"FILES = {lua_list(files)}", f"MODULES = {lua_list(modules)}", HARNESS]
    for name, code in DRIVERS.items():
        body.append(f'run("{name}", function()\n{code}\nend)')
    return "\n".join(body)


def _sections(lines: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    cur = None
    for line in lines:
        line = re.sub(r"0x[0-9a-f]{6,}", "0x?", line)
        if line.startswith("== "):
            cur = line[3:]
            out[cur] = []
        elif cur is not None:
            out[cur].append(line)
    return out


def _refused(name: str, got: dict[str, list[str]], trusted: bool) -> bool:
    for pattern, (witness, error) in (REFUSALS[:1] if trusted else REFUSALS):
        if re.fullmatch(pattern, name):
            out = got.get(witness) or [""]
            return re.search(error, out[-1]) is not None
    return False


@pytest.mark.slow
def test_sandboxed_trusted_and_plain_luajit_agree_on_the_corpus(make_host, mods_dir, tmp_path):
    corpus = _corpus_or_skip()
    plain_dir = tmp_path / "plain"
    files, modules = _build_tree(corpus, plain_dir)
    src = _init_lua(files, modules)
    plain = _sections([l.replace(f"{plain_dir}/", "") for l in run_plain(src, plain_dir, chunkname="@init.lua")])
    assert plain["compile"] and all(l.endswith("\tok") for l in plain["compile"]), plain["compile"]
    assert not any(l.startswith("ERROR") for name in DRIVERS for l in plain[name]), plain
    # dkjson's suite prints only what it reports (sparse arrays, NaN) and its failures
    assert plain["dkjson_suite"][:2] == ['sparse array (#=0) encoded as:\t{"1000":"x"}',
                                         'sparse array (#=1) encoded as:\t{"1000":"x","1":"a"}']
    assert not any("expected" in l or "isn't" in l for l in plain["dkjson_suite"]), plain["dkjson_suite"]
    for trusted in (False, True):
        mid = "diff_t" if trusted else "diff_s"
        folder = mods_dir / mid
        _build_tree(corpus, folder)
        got = _sections(run_mod(make_host, mods_dir, mid, src, trusted=trusted, init_budget_ms=60_000))
        assert set(got) == set(plain), (trusted, sorted(set(plain) ^ set(got)), got.get("ERROR"))
        problems = []
        for name, want in plain.items():
            have = [l.replace(f"mods/{mid}/", "") for l in got[name]]
            if have == want:
                continue
            if want and want[-1].startswith("ERROR ") and have and have[-1].startswith("ERROR "):
                continue   # fails everywhere (a C module it needs, say); the messages may differ
            if _refused(name, got, trusted):
                continue
            first = next((i for i, (a, b) in enumerate(zip(have, want)) if a != b), min(len(have), len(want)))
            problems.append((name, have[max(0, first - 2):first + 8], want[max(0, first - 2):first + 8]))
        assert not problems, "\n".join([f"{'trusted' if trusted else 'sandboxed'} mod differs from LuaJIT:"] + [
            f"[{name}] (from the first difference)\n  mod:    {have}\n  LuaJIT: {want}"
            for name, have, want in problems])
