"""Tests for how set-up lays out its cached llama.cpp folders from a build tree.

One build can make both the library and llama-server (a fresh ``make test``);
its tree is staged twice, into the library's folder and into llama-server's.
These tests run our copy step on a build tree of plain files laid out as
llama.cpp's cmake build leaves it (no compiler is run), and check that each
folder gets what its finder and its users expect, and nothing of the other's.
The real combined build is exercised by a fresh ``make test``.
"""

from __future__ import annotations

import json
import os

import pytest

from host.errors import SetupError
from host.setup import llama_build


@pytest.fixture
def tmp_home(tmp_path, monkeypatch):
    """An empty cache root, so nothing touches the real cache."""
    monkeypatch.setenv("RELIC_HOME", str(tmp_path / "relic-home"))
    monkeypatch.delenv("RELIC_CMAKE_ARGS", raising=False)
    return tmp_path / "relic-home"


def _versioned_lib(folder, stem, version):
    """libX.so.VERSION plus its soname links, as cmake writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    major = version.split(".")[0]
    (folder / f"{stem}.so.{version}").write_bytes(stem.encode())
    os.symlink(f"{stem}.so.{version}", folder / f"{stem}.so.{major}")
    os.symlink(f"{stem}.so.{major}", folder / f"{stem}.so")


def _fake_tree(root):
    """A build tree and a source tree holding the files a combined build leaves."""
    build, src = root / "build", root / "src"
    bin_dir = build / "bin"
    for stem in ("libggml", "libggml-base", "libggml-cpu", "libggml-rpc"):
        _versioned_lib(bin_dir, stem, "0.25.3")
    for stem in ("libllama", "libllama-common", "libmtmd"):
        _versioned_lib(bin_dir, stem, "0.5.0")
    (bin_dir / "libllama-server-impl.so").write_bytes(b"impl")
    for exe in ("ggml-rpc-server", "llama-server"):
        (bin_dir / exe).write_bytes(exe.encode())
    # object files and cmake's own copies are never staged
    cmake_files = build / "src" / "CMakeFiles" / "llama.dir"
    cmake_files.mkdir(parents=True)
    (cmake_files / "libllama.so.0.5.0").write_bytes(b"not this one")
    for rel, name in (("include", "llama.h"), ("ggml/include", "ggml.h"), ("ggml/include", "ggml-rpc.h")):
        (src / rel).mkdir(parents=True, exist_ok=True)
        (src / rel / name).write_text(f"/* {name} */\n")
    return build, src


def test_targets_of_the_library_and_of_the_combined_build():
    flags = llama_build.cmake_args()
    assert llama_build.build_targets(flags) == ["llama", llama_build.RPC_SERVER_TARGET]
    assert llama_build.build_targets(flags, with_server=True) == \
        ["llama", llama_build.RPC_SERVER_TARGET, llama_build.LLAMA_SERVER_TARGET]
    no_rpc = flags + ("-DGGML_RPC=OFF",)
    assert llama_build.build_targets(no_rpc, with_server=True) == ["llama", llama_build.LLAMA_SERVER_TARGET]


def test_server_options_leave_the_library_cache_key_alone(tmp_home):
    """llama-server's folder is keyed by the library's flags plus its own; the library's is not."""
    lib_flags = llama_build.cmake_args()
    assert llama_build.library_dir(lib_flags).name == llama_build.cache_key(lib_flags)
    assert llama_build.server_build_dir().name == \
        llama_build.cache_key(lib_flags + llama_build.SERVER_CMAKE_ARGS)
    assert llama_build.server_build_dir().name != llama_build.library_dir(lib_flags).name


def test_one_build_tree_stages_the_library_and_the_server(tmp_home, tmp_path):
    build, src = _fake_tree(tmp_path)
    lib_flags = llama_build.cmake_args()
    server_flags = lib_flags + llama_build.SERVER_CMAKE_ARGS
    lib_dir = llama_build.library_dir(lib_flags)
    server_dir = llama_build.server_build_dir()

    llama_build.stage_build(build, src, lib_dir, libs=llama_build.LIBRARY_LIBS,
                            programs=llama_build.build_targets(lib_flags), flags=lib_flags, seconds=1.5)
    llama_build.stage_build(build, src, server_dir, libs=llama_build.SERVER_LIBS,
                            programs=[llama_build.LLAMA_SERVER_TARGET], flags=server_flags, seconds=1.5)

    ggml = {f"libggml{part}.so{v}" for part in ("", "-base", "-cpu", "-rpc") for v in ("", ".0", ".0.25.3")}
    llama = {f"libllama.so{v}" for v in ("", ".0", ".0.5.0")}
    # the library's folder: exactly what a library-only build leaves, plus its rpc server
    assert {p.name for p in (lib_dir / "lib").iterdir()} == ggml | llama | {"ggml-rpc-server"}
    assert os.readlink(lib_dir / "lib" / "libllama.so") == "libllama.so.0"  # links stay relative
    assert (lib_dir / "lib" / "libllama.so.0.5.0").read_bytes() == b"libllama"  # not the CMakeFiles copy
    info = json.loads((lib_dir / "info.json").read_text())
    assert info["build_flags"] == list(lib_flags)
    assert (lib_dir / "headers" / "include" / "llama.h").is_file()
    assert (lib_dir / "headers" / "ggml" / "include" / "ggml-rpc.h").is_file()

    # the server's folder: the libraries llama-server links, and llama-server next to them
    extra = {f"lib{stem}.so{v}" for stem in ("llama-common", "mtmd") for v in ("", ".0", ".0.5.0")}
    assert {p.name for p in (server_dir / "lib").iterdir()} == \
        ggml | llama | extra | {"libllama-server-impl.so", "llama-server"}
    assert json.loads((server_dir / "info.json").read_text())["build_flags"] == list(server_flags)

    # each folder is what its finder accepts (the library's once its cffi artifacts are generated,
    # which set-up does next from the staged headers; an empty folder stands in for them here)
    assert llama_build.find_llama_server() == server_dir / "lib" / "llama-server"
    assert llama_build.find_library() is None
    (lib_dir / f"artifacts-{llama_build.generator_hash()}").mkdir()
    found = llama_build.find_library()
    assert found is not None and found.lib_path == lib_dir / "lib" / "libllama.so"
    assert found.rpc_server == lib_dir / "lib" / "ggml-rpc-server"


def test_a_missing_program_is_named(tmp_path, tmp_home):
    build, src = _fake_tree(tmp_path)
    (build / "bin" / "llama-server").unlink()
    with pytest.raises(SetupError, match="produced no llama-server"):
        llama_build.stage_build(build, src, tmp_path / "out", libs=llama_build.SERVER_LIBS,
                                programs=[llama_build.LLAMA_SERVER_TARGET], flags=(), seconds=0)


def _record_builds(monkeypatch, tmp_path):
    """Replace the two compile steps by ones that stage the fake tree and record which ran."""
    calls = []
    build, src = _fake_tree(tmp_path / "tree")

    def combined(lib_flags, lib_final, server_final):
        calls.append(("library+server", lib_final.name, server_final.name))
        llama_build.stage_build(build, src, lib_final, libs=llama_build.LIBRARY_LIBS,
                                programs=llama_build.build_targets(lib_flags), flags=lib_flags, seconds=0)
        llama_build.stage_build(build, src, server_final, libs=llama_build.SERVER_LIBS,
                                programs=[llama_build.LLAMA_SERVER_TARGET], flags=(), seconds=0)

    def single(flags, final, targets=None):
        calls.append(("single", final.name, tuple(targets or ())))
        llama_build.stage_build(build, src, final, libs=llama_build.SERVER_LIBS, programs=list(targets or ()),
                                flags=flags, seconds=0)

    monkeypatch.setattr(llama_build, "_build_library_and_server", combined)
    monkeypatch.setattr(llama_build, "_build", single)
    return calls


def test_llama_server_on_an_empty_cache_is_built_with_the_library_once(tmp_home, tmp_path, monkeypatch):
    calls = _record_builds(monkeypatch, tmp_path)
    lib_dir = llama_build.library_dir(llama_build.cmake_args())
    server = llama_build.ensure_llama_server()
    assert calls == [("library+server", lib_dir.name, llama_build.server_build_dir().name)]
    assert server == llama_build.find_llama_server()
    assert (lib_dir / "lib" / "ggml-rpc-server").is_file() and (lib_dir / "info.json").is_file()
    assert llama_build.ensure_llama_server() == server  # warm: nothing more is built
    assert len(calls) == 1


def test_llama_server_beside_a_cached_library_builds_only_the_server(tmp_home, tmp_path, monkeypatch):
    build, src = _fake_tree(tmp_path / "cached")
    lib_flags = llama_build.cmake_args()
    llama_build.stage_build(build, src, llama_build.library_dir(lib_flags), libs=llama_build.LIBRARY_LIBS,
                            programs=llama_build.build_targets(lib_flags), flags=lib_flags, seconds=0)
    calls = _record_builds(monkeypatch, tmp_path)
    assert llama_build.ensure_llama_server() == llama_build.find_llama_server()
    assert calls == [("single", llama_build.server_build_dir().name, (llama_build.LLAMA_SERVER_TARGET,))]
    with pytest.raises(SetupError, match="not built"):
        llama_build.ensure_llama_server(["-DGGML_NATIVE=OFF"], allow_build=False)
