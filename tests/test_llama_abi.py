"""The generated cdef covers llama.h and matches the compiled library's layout."""

from __future__ import annotations

import json
import re

import cffi
import pytest

from host.errors import ABIMismatchError
from host.llama import abi, cdefgen
from host.llama.lib import Lib, LibPaths


def test_every_llama_api_function_resolves(lib):
    header = lib.paths.include_dir / "llama.h"
    from_text = cdefgen.api_functions(header)  # a regex over the header source
    assert len(from_text) > 200
    assert set(from_text) == set(lib.functions), "cdef and header disagree on the function list"
    missing = [name for name in from_text if not callable(getattr(lib.C, name, None))]
    assert missing == []


def test_abi_probe_matches_cffi(lib):
    probe = json.loads((lib.paths.artifacts_dir / cdefgen.ABI_FILE).read_text())
    kinds = {key.split(" ")[0] for key in probe}
    assert {"size", "align", "offset", "fsize", "const"} <= kinds
    assert "offset struct llama_context_params.n_ctx" in probe
    assert abi.check(lib.ffi, lib.C, probe) == []


def test_defines_and_enum_values_survive_preprocessing(lib):
    assert lib.C.LLAMA_DEFAULT_SEED == 0xFFFFFFFF
    assert lib.C.LLAMA_TOKEN_NULL == -1
    assert lib.C.GGML_TYPE_Q4_1 == 3  # explicit enum value in ggml.h
    assert lib.C.LLAMA_SESSION_MAGIC == 0x6767736E


def test_a_wrong_layout_is_refused_naming_the_field(lib, tmp_path):
    """Swap two fields of llama_batch in a copy of the cdef: loading must fail and say where."""
    cdef = (lib.paths.artifacts_dir / cdefgen.CDEF_FILE).read_text()
    m = re.search(r"typedef struct llama_batch\s*\{(.*?)\}", cdef, re.S)
    body = m.group(1)
    swapped = body.replace("int32_t n_tokens;", "int64_t n_tokens;")
    assert swapped != body
    art = tmp_path / "art"
    art.mkdir()
    (art / cdefgen.CDEF_FILE).write_text(cdef.replace(body, swapped))
    for name in (cdefgen.ABI_FILE, cdefgen.FUNCTIONS_FILE):
        (art / name).write_text((lib.paths.artifacts_dir / name).read_text())
    # a fresh Lib on the same library file, bypassing the per-path cache
    with pytest.raises(ABIMismatchError, match=r"struct llama_batch\.n_tokens"):
        Lib(LibPaths(lib.paths.lib_path, lib.paths.include_dir, art))


def test_check_reports_a_wrong_constant(lib):
    ffi = cffi.FFI()
    ffi.cdef("#define LLAMA_SESSION_VERSION 12345")
    problems = abi.check(ffi, ffi.dlopen(None), {"const LLAMA_SESSION_VERSION": 10})
    assert problems and "LLAMA_SESSION_VERSION" in problems[0]


def test_logging_bridge_routes_llama_logs(lib, model_path, caplog):
    import logging

    from host.llama import Model

    with caplog.at_level(logging.INFO, logger="relic.llama"):
        m = Model(model_path, lib=lib, vocab_only=True)
        m.close()
    assert any(r.name == "relic.llama" and "llama" in r.getMessage() for r in caplog.records)
