"""Offload settings, device listing, GPU variants and the fallback, on the CPU build (make test).

The same settings run on a real GPU backend in tests/test_gpu_offload.py
(`make test-gpu`, Vulkan on Mesa's lavapipe).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from host.errors import DeviceError, RpcError, SetupError
from host.llama import devices, offload
from host.setup import gpu

ROOT = Path(__file__).resolve().parents[1]

# A child process's way to the configured model: the settings from its environment, set-up, load.
PREPARED_MODEL = ("import os; from host.app import load_model; from host.config import Config; "
                  "from host.startup import prepare; cfg = Config.load(environ=os.environ, rag=False); "
                  "m = load_model(cfg, prepare(cfg)); l = m.lib;")



def _child_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELIC_GPU", "RELIC_RPC", "RELIC_SPLIT",
                                                                        "RELIC_MAIN_GPU", "RELIC_EMBED_GPU"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


# --- settings -----------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    (None, None), ("", None), ("auto", None), ("all", -1), ("ALL", -1), ("-1", -1), ("0", 0),
    ("12", 12), (7, 7), (-3, -1),
])
def test_gpu_layers_values(value, expected):
    assert offload.parse_gpu_layers(value) == expected


@pytest.mark.parametrize("value", ["lots", "1.5", "12 layers", True, "9999999"])
def test_bad_gpu_layers_name_the_setting(value):
    with pytest.raises(DeviceError, match="RELIC_GPU_LAYERS"):
        offload.parse_gpu_layers(value)


def test_offload_settings_come_from_the_config_and_its_errors():
    from host.config import Config
    from host.errors import ConfigError

    cfg = Config.load(environ={"RELIC_GPU_LAYERS": "all", "RELIC_SPLIT_MODE": "row", "RELIC_MAIN_GPU": "1"})
    off = cfg.offload()
    assert (off.gpu_layers, off.split_mode, off.main_gpu) == (-1, "row", 1)
    embed = Config.load(environ={"RELIC_GPU_LAYERS": "all", "RELIC_EMBED_GPU_LAYERS": "0"}).offload(embed=True)
    assert embed.gpu_layers == 0  # the embedding model has its own override
    assert Config.load(environ={"RELIC_GPU_LAYERS": "5"}).offload(embed=True).gpu_layers == 5
    with pytest.raises(ConfigError, match="RELIC_SPLIT_MODE"):
        Config.load(environ={"RELIC_SPLIT_MODE": "diagonal"})
    with pytest.raises(ConfigError, match="RELIC_MAIN_GPU"):
        Config.load(environ={"RELIC_MAIN_GPU": "first"})


# --- devices on the CPU build -------------------------------------------------------

def test_cpu_build_lists_its_devices_and_the_rpc_backend(lib):
    devs = devices.list_devices(lib)
    assert devs and devs[0].backend == "CPU" and devs[0].kind == "cpu"
    assert devs[0].memory_total > 0  # the CPU device reports system memory
    assert "RPC" in devices.backends(lib)  # the pinned build has the RPC client
    assert devices.offload_devices(lib) == []


def test_automatic_offload_is_cpu_only_without_a_gpu(lib, model):
    plan = offload.resolve(lib, offload.OffloadConfig())
    assert plan.n_gpu_layers == 0 and "no GPU" in plan.reason
    assert model.placement == "CPU"
    assert model.offloaded == (0, model.n_layer + 1)


def test_asking_for_layers_without_a_gpu_loads_on_the_cpu_and_says_so(lib, model_path):
    from host.llama import Model

    m = Model(model_path, lib=lib, n_gpu_layers="all")
    try:
        assert m.offload.n_gpu_layers == -1
        assert "no GPU or RPC device" in m.offload.reason
        assert m.placement == "CPU" and m.offloaded[0] == 0
    finally:
        m.close()


def test_main_gpu_beyond_the_devices_is_a_clear_error(lib, model_path):
    from host.llama import Model

    with pytest.raises(DeviceError, match="main_gpu=2 but there are 0 offload device"):
        Model(model_path, lib=lib, offload=offload.OffloadConfig(main_gpu=2))


def test_llm_results_say_where_inference_ran(shared_worker):
    h = shared_worker.submit("t", prompt="Hello", max_tokens=2, temperature=0.0)
    result = shared_worker.wait(h, timeout=120)
    assert result["device"] == "CPU"


# --- RPC endpoint checks (no server needed) -------------------------------------------

@pytest.mark.parametrize("bad", ["localhost", "127.0.0.1:0", "127.0.0.1:70000", "host:port", ":50052",
                                 "a b:1", "127.0.0.1:50052/x"])
def test_malformed_rpc_endpoints_are_refused_before_ggml_sees_them(bad):
    with pytest.raises(RpcError, match="host:port"):
        devices.parse_endpoints(bad)


def test_rpc_endpoint_list_is_deduplicated_and_capped():
    assert devices.parse_endpoints(" 127.0.0.1:1, 127.0.0.1:1 ,h:2,") == ["127.0.0.1:1", "h:2"]
    with pytest.raises(RpcError, match="at most 16"):
        devices.parse_endpoints([f"127.0.0.1:{p}" for p in range(1000, 1017)])


# --- GPU variants -------------------------------------------------------------------

def test_gpu_words_map_to_cmake_flags_in_the_cache_key():
    from host.setup import llama_build

    assert gpu.flags("vulkan")[0] == "-DGGML_VULKAN=ON" and gpu.flags("cuda") == ("-DGGML_CUDA=ON",)
    assert gpu.check_kind(" CUDA ") == "cuda" and gpu.check_kind("none") == "cpu"
    keys = {k: llama_build.cache_key(llama_build.cmake_args(gpu.flags(k))) for k in gpu.BACKENDS}
    assert len(set(keys.values())) == len(keys)  # every variant is its own cached build
    with pytest.raises(SetupError, match="use one of cpu, cuda, vulkan, metal, hip"):
        gpu.check_kind("opencl")


def test_missing_toolchain_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvcc, glslc, hipcc on an empty PATH
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))
    monkeypatch.setenv("ROCM_PATH", str(tmp_path))
    monkeypatch.delenv("CUDACXX", raising=False)
    monkeypatch.delenv("VULKAN_SDK", raising=False)
    with pytest.raises(SetupError, match="nvidia-cuda-toolkit"):
        gpu.check_toolchain("cuda")
    with pytest.raises(SetupError, match=r"apt-get install glslc"):
        gpu.check_toolchain("vulkan")
    with pytest.raises(SetupError, match="hipcc"):
        gpu.check_toolchain("hip")
    assert gpu.missing_toolchain("cpu") == []


def test_setup_saves_the_choice_and_env_overrides_it(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    monkeypatch.delenv("RELIC_GPU", raising=False)
    assert gpu.selected() == ("cpu", "default")
    gpu.save_choice("Vulkan")
    assert (tmp_path / "venv" / "relic-gpu").read_text().strip() == "vulkan"
    assert gpu.selected()[0] == "vulkan"
    monkeypatch.setenv("RELIC_GPU", "cpu")
    assert gpu.selected() == ("cpu", "$RELIC_GPU")


def test_setup_refuses_an_unknown_gpu_word():
    proc = subprocess.run([sys.executable, "-m", "host.setup", "llama", "--gpu", "quantum"],
                          capture_output=True, text=True, env=_child_env(), cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and "unknown GPU backend 'quantum'" in proc.stderr


def test_a_gpu_build_that_is_not_there_falls_back_with_one_line(tmp_path):
    """RELIC_GPU=hip (never built here): the CPU build runs, and one stderr line says why."""
    code = (PREPARED_MODEL + "from host.llama import lib;"
            "import json; s = lib.selection(); print(json.dumps([s.requested, s.used, m.placement]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env=_child_env(RELIC_GPU="hip"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == ["hip", "cpu", "CPU"]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("[relic setup] GPU build")]
    assert lines == ["[relic setup] GPU build 'hip' not used, running on the CPU: the hip build is not there "
                     "(run `make setup GPU=hip`)"]


def test_the_gpu_probe_fails_cleanly_on_a_build_without_a_gpu(lib, model_path):
    """The probe child loads the build, finds no GPU device and says so (the CPU build is one)."""
    from host.errors import GpuProbeError
    from host.llama.probe import probe_gpu

    with pytest.raises(GpuProbeError, match="sees no GPU device"):
        probe_gpu(lib.paths, model_path, timeout=120)


def test_doctor_lists_backends_devices_and_offload():
    proc = subprocess.run([sys.executable, "-m", "host.cli", "doctor", "--gpu-layers", "all"],
                          capture_output=True, text=True, cwd=ROOT, env=_child_env(RELIC_GPU="cpu"),
                          timeout=300)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-2000:]
    assert "GPU choice   cpu" in out
    assert "backends" in out and "RPC" in out and "CPU" in out
    assert "device 0" in out and "GiB free of" in out
    assert "offload      0/" in out and "on CPU" in out


def test_vulkan_headers_too_old_are_named_with_the_fix(monkeypatch, tmp_path):
    from host.setup import vulkan_headers

    old = tmp_path / "old" / "vulkan"
    old.mkdir(parents=True)
    (old / "vulkan_core.h").write_text("#define VK_HEADER_VERSION 239\n")
    (old / "vulkan.hpp").write_text("")
    monkeypatch.setattr(vulkan_headers, "SYSTEM_ROOTS", (str(tmp_path / "old"),))
    monkeypatch.setenv("RELIC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VULKAN_SDK", raising=False)
    assert vulkan_headers.system_headers() is None
    with pytest.raises(SetupError, match=r"1\.x\.239.*VK_EXT_layer_settings.*make vulkan-deps"):
        vulkan_headers.include_dir()
    assert gpu.flags("vulkan") == ("-DGGML_VULKAN=ON",)  # nothing fetched: no include override
    new = vulkan_headers.cached_dir() / "vulkan"
    new.mkdir(parents=True)
    (new / "vulkan_core.h").write_text("#define VK_EXT_layer_settings 1\n")
    (new / "vulkan.hpp").write_text("")
    assert vulkan_headers.include_dir() == vulkan_headers.cached_dir()
    assert gpu.flags("vulkan")[-1] == f"-DVulkan_INCLUDE_DIR={vulkan_headers.cached_dir()}"
