"""Generate cffi declarations and an ABI probe from the pinned llama.h.

The header is run through the real C preprocessor, so every ``#define``
constant and explicit enum value is what the compiler sees.  From the result
we keep every declaration of ``llama.h`` itself plus the ggml/gguf types it
reaches (transitively); of ggml's own functions only the few backend/device
ones in :data:`GGML_FUNCTIONS` are declared (device listing, RPC registration),
to keep the cdef small.

A tiny C program (the *probe*) is generated from the same declarations and
compiled against the same header; it prints ``sizeof``/``alignof``/``offsetof``
of every struct field we declare and the value of every enum constant and
integer ``#define``.  ``host.llama.abi`` compares that with cffi's view.

Setup calls :func:`build_artifacts` once per library build; the files it
writes (``cdef.h``, ``abi.json``, ``functions.json``) sit next to the library
so the declarations and the binary always match.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pycparser import c_ast, c_generator, c_parser

from host.errors import SetupError

CDEF_FILE = "cdef.h"
ABI_FILE = "abi.json"
FUNCTIONS_FILE = "functions.json"

# Attribute and visibility macros expand to nothing: cffi and pycparser need
# plain C declarations.
_PP_DEFINES = ("-D__attribute__(x)=", "-D__declspec(x)=")

# Types the system headers provide; declared only so pycparser can parse our
# part of the translation unit.  cffi knows all of them natively.
_PARSE_PRELUDE = """
typedef unsigned long size_t; typedef long ptrdiff_t; typedef long intptr_t; typedef unsigned long uintptr_t;
typedef signed char int8_t; typedef unsigned char uint8_t; typedef short int16_t; typedef unsigned short uint16_t;
typedef int int32_t; typedef unsigned int uint32_t; typedef long int64_t; typedef unsigned long uint64_t;
typedef struct _IO_FILE FILE;
"""
_PRELUDE_LINES = _PARSE_PRELUDE.count("\n")

# ggml functions the binding uses (host.llama.devices, host.llama.aborts).  All of them
# return borrowed pointers into ggml's registry (valid for the process's life)
# or fill caller-owned memory; none transfers ownership.  ggml-rpc.h is not
# parsed: its add_server entry point is fetched at run time through
# ggml_backend_reg_get_proc_address, as llama.cpp's own tools do.
GGML_FUNCTIONS = (
    "ggml_backend_reg_count", "ggml_backend_reg_get", "ggml_backend_reg_by_name",
    "ggml_backend_reg_name", "ggml_backend_reg_dev_count", "ggml_backend_reg_dev_get",
    "ggml_backend_reg_get_proc_address", "ggml_backend_register",
    "ggml_backend_dev_count", "ggml_backend_dev_get", "ggml_backend_dev_name",
    "ggml_backend_dev_description", "ggml_backend_dev_memory", "ggml_backend_dev_type",
    "ggml_backend_dev_get_props", "ggml_backend_dev_backend_reg",
    # ggml.h: a hook called with the message just before ggml aborts the process
    "ggml_set_abort_callback",
)
# Structs those functions fill through a pointer: declared with their body
# (and ABI-checked) instead of opaque.
GGML_STRUCT_BODIES = ("ggml_backend_dev_props",)

_INT_EXPR = re.compile(r"^[-+~()\s]*(0[xX][0-9a-fA-F]+|\d+)[uUlL]*[)\s]*$")


@dataclass
class Header:
    """The parsed declarations of llama.h and what it needs from ggml."""

    decls: list = field(default_factory=list)  # c_ast nodes, in source order
    functions: list = field(default_factory=list)  # LLAMA_API function names
    ggml_functions: list = field(default_factory=list)  # the GGML_FUNCTIONS found
    structs: dict = field(default_factory=dict)  # "struct x" -> [field names]
    enum_constants: list = field(default_factory=list)
    defines: dict = field(default_factory=dict)  # name -> integer expression text


def _compiler(cc: str | None = None) -> str:
    """``cc`` (set-up passes ``$CC``), else the first C compiler on PATH."""
    cc = cc or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise SetupError("no C compiler found: install one (Debian/Ubuntu: apt-get install build-essential)")
    return cc


def include_dirs(include_dir: Path) -> list[Path]:
    """llama's include dir plus ggml's, as laid out in the llama.cpp tree."""
    dirs = [Path(include_dir)]
    ggml = Path(include_dir).parent / "ggml" / "include"
    if ggml.is_dir():
        dirs.append(ggml)
    return dirs


def _preprocess(source: str, incs: list[Path], cc: str | None = None) -> str:
    cmd = [_compiler(cc), "-E", *_PP_DEFINES, *[f"-I{d}" for d in incs], "-"]
    proc = subprocess.run(cmd, input=source, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"the C preprocessor failed on llama.h:\n{proc.stderr[-2000:]}")
    return proc.stdout


def _split_by_origin(pp: str, incs: list[Path]) -> tuple[str, list[str]]:
    """Keep only lines from our headers; return the text and each line's file."""
    roots = [str(d.resolve()) for d in incs]
    current, keep, origin = "", [], []
    for line in pp.splitlines():
        if line.startswith("# "):
            m = re.match(r'# \d+ "([^"]+)"', line)
            if m:
                current = m.group(1)
            continue
        path = os.path.realpath(current) if current and not current.startswith("<") else ""
        if any(path.startswith(r + os.sep) for r in roots):
            keep.append(line)
            origin.append(os.path.basename(path))
    return "\n".join(keep), origin


def _names_used(node) -> set[str]:
    """Type names (typedefs, 'struct x', 'enum x') a declaration refers to."""
    used: set[str] = set()

    class V(c_ast.NodeVisitor):
        def visit_IdentifierType(self, n):
            used.update(n.names)

        def visit_Struct(self, n):
            if n.name:
                used.add("struct " + n.name)
            self.generic_visit(n)

        def visit_Union(self, n):
            if n.name:
                used.add("union " + n.name)
            self.generic_visit(n)

        def visit_Enum(self, n):
            if n.name:
                used.add("enum " + n.name)
            self.generic_visit(n)

    V().visit(node)
    return used


def _names_defined(node) -> set[str]:
    names: set[str] = set()
    if isinstance(node, c_ast.Typedef):
        names.add(node.name)
    typ = node.type
    while isinstance(typ, (c_ast.TypeDecl, c_ast.PtrDecl, c_ast.ArrayDecl, c_ast.FuncDecl)):
        typ = typ.type
    if isinstance(typ, c_ast.Struct) and typ.name:
        names.add("struct " + typ.name)
    elif isinstance(typ, c_ast.Union) and typ.name:
        names.add("union " + typ.name)
    elif isinstance(typ, c_ast.Enum) and typ.name:
        names.add("enum " + typ.name)
    if isinstance(node, c_ast.Decl) and node.name:
        names.add(node.name)
    return names


def _struct_body(node):
    """The Struct/Union node with a body that `node` defines, if any."""
    typ = node.type
    while isinstance(typ, (c_ast.TypeDecl, c_ast.PtrDecl)):
        typ = typ.type
    if isinstance(typ, (c_ast.Struct, c_ast.Union)) and typ.decls is not None:
        return typ
    return None


def _field_names(struct) -> list[str]:
    """Named fields, anonymous union/struct members flattened (C11 style)."""
    out = []
    for d in struct.decls or []:
        if d.name:
            out.append(d.name)
        else:
            inner = d.type
            if isinstance(inner, (c_ast.Struct, c_ast.Union)):
                out.extend(_field_names(inner))
    return out


def parse_header(include_dir: Path, cc: str | None = None) -> Header:
    """Preprocess and parse llama.h; select what the binding declares."""
    incs = include_dirs(include_dir)
    text, origin = _split_by_origin(_preprocess('#include "llama.h"\n', incs, cc), incs)
    parser = c_parser.CParser()
    try:
        ast = parser.parse(_PARSE_PRELUDE + text, filename="llama.h")
    except c_parser.ParseError as exc:
        raise SetupError(f"could not parse the preprocessed llama.h: {exc}") from exc

    decls = []
    for node in ast.ext:
        line = node.coord.line - 1 - _PRELUDE_LINES if node.coord else -1
        if 0 <= line < len(origin):
            decls.append((node, origin[line]))

    # Everything from llama.h, plus the ggml/gguf declarations it reaches.
    defined_by: dict[str, list[int]] = {}
    for i, (node, _) in enumerate(decls):
        for name in _names_defined(node):
            defined_by.setdefault(name, []).append(i)
    wanted = {i for i, (node, src) in enumerate(decls) if src == "llama.h" or _is_ggml_function(node)}
    todo = list(wanted)
    while todo:
        node = decls[todo.pop()][0]
        for name in _names_used(node):
            for j in defined_by.get(name, ()):
                if j not in wanted:
                    wanted.add(j)
                    todo.append(j)

    by_value = _structs_used_by_value([decls[i][0] for i in wanted]) | set(GGML_STRUCT_BODIES)
    header = Header()
    for i, (node, src) in enumerate(decls):
        if i not in wanted:
            continue
        if isinstance(node, c_ast.Decl) and isinstance(node.type, c_ast.FuncDecl) and src != "llama.h":
            if _is_ggml_function(node):
                header.decls.append(node)
                header.ggml_functions.append(node.name)
            continue  # other ggml functions are not part of the binding
        body = _struct_body(node)
        if src != "llama.h" and body is not None and body.name and body.name not in by_value:
            # ggml structs that llama.h only points to stay opaque
            kind = "struct" if isinstance(body, c_ast.Struct) else "union"
            node = c_ast.Decl(None, [], [], [], [], type(body)(body.name, None), None, None)
            header.decls.append(node)
            continue
        header.decls.append(node)
        if isinstance(node, c_ast.Decl) and isinstance(node.type, c_ast.FuncDecl):
            header.functions.append(node.name)
        body = _struct_body(node)
        if body is not None and body.name:
            kind = "struct" if isinstance(body, c_ast.Struct) else "union"
            header.structs[f"{kind} {body.name}"] = _field_names(body)
        for en in _enums_in(node):
            header.enum_constants.extend(e.name for e in en.values.enumerators)
    header.defines = _integer_defines(include_dir, incs, cc)
    return header


def _is_ggml_function(node) -> bool:
    return (isinstance(node, c_ast.Decl) and isinstance(node.type, c_ast.FuncDecl)
            and node.name in GGML_FUNCTIONS)


def _structs_used_by_value(nodes) -> set[str]:
    """Names of structs/unions that appear somewhere not behind a pointer."""
    found: set[str] = set()

    def walk(n, behind_ptr=False):
        if isinstance(n, (c_ast.Struct, c_ast.Union)):
            if n.name and not behind_ptr:
                found.add(n.name)
            for d in n.decls or []:
                walk(d.type)
            return
        if isinstance(n, c_ast.PtrDecl):
            walk(n.type, True)
            return
        if isinstance(n, c_ast.FuncDecl):
            walk(n.type)
            for p in (n.args.params if n.args else []):
                walk(getattr(p, "type", None))
            return
        if isinstance(n, (c_ast.TypeDecl, c_ast.ArrayDecl, c_ast.Typedef, c_ast.Decl)):
            walk(n.type, behind_ptr)

    for node in nodes:
        body = _struct_body(node)
        if body is not None and isinstance(node, c_ast.Decl) and not node.name:
            for d in body.decls:  # a definition does not use itself by value
                walk(d.type)
        else:
            walk(node)
    return found


def _enums_in(node):
    found = []

    class V(c_ast.NodeVisitor):
        def visit_Enum(self, n):
            if n.values is not None:
                found.append(n)

    V().visit(node)
    return found


def _integer_defines(include_dir: Path, incs: list[Path], cc: str | None = None) -> dict[str, str]:
    """Integer-valued ``#define LLAMA_*`` constants, expanded by the preprocessor."""
    src = (Path(include_dir) / "llama.h").read_text()
    names = sorted(set(re.findall(r"^\s*#\s*define\s+(LLAMA_[A-Z0-9_]+)\s+\S", src, re.M)))
    probe = '#include "llama.h"\n' + "".join(f"RELIC_DEFINE_{n} = {n};\n" for n in names)
    out = {}
    for line in _preprocess(probe, incs, cc).splitlines():
        m = re.match(r"RELIC_DEFINE_(\w+) = (.*);$", line)
        if m and _INT_EXPR.match(m.group(2)):
            out[m.group(1)] = m.group(2).strip()
    return out


def render_cdef(header: Header) -> str:
    """C declarations for ``FFI.cdef``: the selected header plus the #defines."""
    gen = c_generator.CGenerator()
    lines = ["/* Generated by host.llama.cdefgen from the pinned llama.h. Do not edit. */"]
    for name, expr in header.defines.items():
        value = int(re.sub(r"[uUlL]+$", "", expr.strip("() ")), 0)
        lines.append(f"#define {name} {value}")
    seen = set()
    for node in header.decls:
        text = gen.visit(node) + ";"
        if text not in seen:  # C allows repeating an identical typedef; cffi does not
            seen.add(text)
            lines.append(text)
    return "\n".join(lines) + "\n"


def render_probe(header: Header) -> str:
    """C source that prints the compiler's layout of everything declared."""
    out = [
        '#include <stdio.h>', '#include <stddef.h>', '#include "llama.h"',
        "int main(void) {", '  printf("{\\n");',
    ]
    for struct, fields in header.structs.items():
        out.append(f'  printf("\\"size {struct}\\": %zu,\\n", sizeof({struct}));')
        out.append(f'  printf("\\"align {struct}\\": %zu,\\n", _Alignof({struct}));')
        for f in fields:
            out.append(f'  printf("\\"offset {struct}.{f}\\": %zu,\\n", offsetof({struct}, {f}));')
            out.append(f'  printf("\\"fsize {struct}.{f}\\": %zu,\\n", sizeof((({struct} *)0)->{f}));')
    for name in header.enum_constants:
        out.append(f'  printf("\\"const {name}\\": %lld,\\n", (long long)({name}));')
    for name in header.defines:
        out.append(f'  printf("\\"const {name}\\": %lld,\\n", (long long)({name}));')
    out += ['  printf("\\"end\\": 0\\n}\\n");', "  return 0;", "}"]
    return "\n".join(out) + "\n"


def run_probe(header: Header, include_dir: Path, cc: str | None = None) -> dict:
    """Compile and run the probe; return its measurements."""
    incs = include_dirs(include_dir)
    with tempfile.TemporaryDirectory(prefix="relic-probe-") as tmp:
        src = Path(tmp) / "probe.c"
        exe = Path(tmp) / "probe"
        src.write_text(render_probe(header))
        cmd = [_compiler(cc), "-std=c11", "-O0", *[f"-I{d}" for d in incs], str(src), "-o", str(exe)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SetupError(f"the ABI probe did not compile:\n{proc.stderr[-2000:]}")
        run = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    data = json.loads(run.stdout)
    data.pop("end", None)
    return data


def build_artifacts(include_dir: Path, lib_dir: Path, out_dir: Path, cc: str | None = None) -> None:
    """Write cdef.h, abi.json and functions.json for the library in lib_dir into out_dir.

    ``cc``: the C compiler to use (set-up passes ``$CC``); default: the first on PATH.
    """
    header = parse_header(Path(include_dir), cc)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    probe = run_probe(header, Path(include_dir), cc)
    files = {
        CDEF_FILE: render_cdef(header),
        ABI_FILE: json.dumps(probe, indent=0, sort_keys=True),
        FUNCTIONS_FILE: json.dumps(header.functions, indent=0),
    }
    for name, text in files.items():
        tmp = out_dir / (name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, out_dir / name)


def api_functions(header_path: Path) -> list[str]:
    """Names of every LLAMA_API function in a header, read from its source text.

    Independent of the pycparser path above, so a test can compare the two.
    """
    src = Path(header_path).read_text()
    src = re.sub(r"//[^\n]*|/\*.*?\*/", "", src, flags=re.S)
    src = re.sub(r"^\s*#.*$", "", src, flags=re.M)  # the LLAMA_API definitions themselves
    names = []
    for m in re.finditer(r"LLAMA_API\s+(?:DEPRECATED\s*\(\s*)?([^;{]*?)\(", src):
        head = m.group(1)
        # DEPRECATED(LLAMA_API ret name(args), hint) and plain declarations alike
        ident = re.findall(r"([A-Za-z_]\w*)\s*$", head)
        if ident:
            names.append(ident[0])
    return sorted(set(names))


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    build_artifacts(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
    print("wrote", sys.argv[3])
