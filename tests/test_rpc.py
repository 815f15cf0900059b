"""llama.cpp's RPC backend with real ggml-rpc-server processes on 127.0.0.1.

Registering a server is permanent for a process (llama.cpp cannot unregister
one), so every run that registers servers happens in a child process; this
test process only starts and stops the servers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from host.errors import RpcError
from host.llama import devices

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Once upon a time, in a small village,"
N_TOKENS = 24

# A child that loads the default model (offload settings from the environment),
# generates greedily and prints one JSON line.
_GENERATE = """
import json, sys
from host.llama import Context, Model, load
from host.llama.generate import generate
import os
from host.app import load_model
from host.config import Config
from host.startup import prepare
cfg = Config.load(environ=os.environ, rag=False)
m = load_model(cfg, prepare(cfg))
lib = m.lib
ctx = Context(m, n_ctx=256, n_batch=64, n_threads=1)
print("READY", flush=True)
text = "".join(generate(ctx, sys.argv[1], max_tokens=int(sys.argv[2])))
print(json.dumps({"text": text, "placement": m.placement, "offloaded": m.offloaded}), flush=True)
"""


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELIC_GPU", "RELIC_RPC", "RELIC_SPLIT",
                                                                        "RELIC_MAIN_GPU"))}
    env["PYTHONPATH"] = str(ROOT)
    env["RELIC_GPU"] = "cpu"
    env.update(extra)
    return env


def _generate(n_tokens=N_TOKENS, **env):
    proc = subprocess.run([sys.executable, "-c", _GENERATE, PROMPT, str(n_tokens)], capture_output=True,
                          text=True, cwd=ROOT, env=_env(**env), timeout=600)
    return proc


@pytest.fixture(scope="module")
def server_binary():
    from host.setup.rpc_server import server_path

    return server_path("cpu", allow_build=False)


@pytest.fixture
def two_servers(server_binary, tmp_path):
    from host.setup.rpc_server import LocalServer

    servers = [LocalServer.start(server_binary, log_path=tmp_path / f"rpc{i}.log") for i in range(2)]
    yield servers
    for s in servers:
        s.stop()


@pytest.fixture(scope="module")
def local_text():
    proc = _generate(RELIC_GPU_LAYERS="0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["placement"] == "CPU"
    return out["text"]


def test_the_rpc_server_is_built_with_the_library_and_runs_from_the_cache(server_binary):
    from host.setup import llama_build

    info = llama_build.ensure_library(allow_build=False)
    assert info.rpc_server == server_binary and os.access(server_binary, os.X_OK)
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}  # $ORIGIN runpath finds ggml
    proc = subprocess.run([str(server_binary), "--help"], capture_output=True, text=True, env=env, timeout=30)
    assert "--port PORT" in proc.stderr + proc.stdout


def test_setup_rpc_server_step_prints_the_path_and_how_to_run_it(server_binary):
    proc = subprocess.run([sys.executable, "-m", "host.setup", "rpc-server"], capture_output=True, text=True,
                          cwd=ROOT, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert str(server_binary) in proc.stdout and "RELIC_RPC=" in proc.stdout


def test_two_loopback_rpc_servers_give_the_local_greedy_text(two_servers, local_text):
    endpoints = ",".join(s.endpoint for s in two_servers)
    proc = _generate(RELIC_RPC=endpoints)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    done, total = out["offloaded"]
    assert done == total > 1  # automatic: every layer goes to the RPC devices
    assert out["placement"].startswith("RPC0+RPC1 (")
    assert len(local_text) > 20
    assert out["text"] == local_text
    assert all(s.alive() for s in two_servers)


@pytest.mark.parametrize("settings,placement", [
    ({"RELIC_SPLIT_MODE": "none", "RELIC_MAIN_GPU": "1"}, "RPC1 (31/31 layers)"),
    ({"RELIC_GPU_LAYERS": "10"}, "RPC0+RPC1+CPU (10/31 layers)"),
])
def test_split_mode_main_gpu_and_partial_offload_over_rpc_devices(two_servers, local_text, settings, placement):
    proc = _generate(RELIC_RPC=",".join(s.endpoint for s in two_servers), **settings)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["placement"] == placement
    assert out["text"] == local_text


def test_rpc_flag_of_relic_run_registers_servers_before_the_model_loads(two_servers, tmp_path):
    (tmp_path / "mods").mkdir()
    proc = subprocess.run([sys.executable, "-m", "host.cli", "doctor", "--rpc", two_servers[0].endpoint],
                          capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert f"RPC          {two_servers[0].endpoint} (1 device(s))" in proc.stdout
    assert "on RPC0 (" in proc.stdout


def test_an_unreachable_server_is_a_clear_error_and_the_process_lives(lib):
    from host.setup.child_server import free_port

    endpoint = f"127.0.0.1:{free_port()}"
    with pytest.raises(RpcError, match=rf"RPC server {endpoint} is unreachable \(Connection refused\)"):
        devices.add_rpc_servers(lib, endpoint)
    assert endpoint not in devices.registered_rpc_endpoints(lib)  # nothing reached ggml


def test_relic_run_with_an_unreachable_server_exits_with_one_clear_line(tmp_path):
    from host.setup.child_server import free_port

    (tmp_path / "mods").mkdir()
    endpoint = f"127.0.0.1:{free_port()}"
    proc = subprocess.run([sys.executable, "-m", "host.cli", "run", "--mods", str(tmp_path / "mods"),
                           "--frames", "1", "--headless", "--rpc", endpoint],
                          capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=300,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert f"relic run: RPC server {endpoint} is unreachable" in proc.stderr
    assert proc.returncode >= 0  # exited, not killed by a signal


def test_a_port_that_is_not_an_rpc_server_is_caught_before_ggml_connects(lib):
    """ggml aborts on a failed handshake: an HTTP answer is caught by the Python handshake first."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    endpoint = f"127.0.0.1:{listener.getsockname()[1]}"
    stop = threading.Event()

    def serve():  # a service that answers every connection with something that is not ggml-rpc
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with pytest.raises(RpcError) as info:
            devices.add_rpc_servers(lib, endpoint, timeout=60)
        msg = str(info.value)
        assert endpoint in msg and "answers HTTP, not ggml-rpc" in msg, msg
        assert endpoint not in devices.registered_rpc_endpoints(lib)
    finally:
        stop.set()
        t.join(timeout=5)
        listener.close()


def _kill_mid_generation(code: str, servers, *, timeout=180):
    """Run ``code`` in a child with both servers; kill the second once it prints READY."""
    endpoints = ",".join(s.endpoint for s in servers)
    proc = subprocess.Popen([sys.executable, "-c", code, PROMPT, "100000"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=_env(RELIC_RPC=endpoints, RELIC_GPU_LAYERS="all"))
    try:
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read()[-3000:]
        time.sleep(0.5)  # generation under way
        servers[1].kill()
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def test_a_server_dying_mid_generation_in_a_script_aborts_the_process_with_a_clear_line(two_servers):
    """What llama.cpp itself does (pinned commit) when a server dies mid-generation: abort().

    With no inference worker (a script decoding on its main thread) Relic lets
    that happen (parking would hang the script) but says why first.  This
    pins llama.cpp's behaviour, so an update that changes it is noticed.
    """
    code, _out, err = _kill_mid_generation(_GENERATE, two_servers)
    assert code == -signal.SIGABRT, err[-2000:]
    line = [ln for ln in err.splitlines() if ln.startswith("relic: llama.cpp is ending the process")]
    assert line and "Remote RPC server crashed" in line[0] and "cannot recover" in line[0], err[-2000:]
    assert two_servers[0].alive()  # the other server is unharmed


# The game's path: the worker thread decodes, the main thread runs frames.
_WORKER_GAME = """
import json, sys, time
from host.llama import Model, load
import os
from host.app import load_model
from host.config import Config
from host.startup import prepare
cfg = Config.load(environ=os.environ, rag=False)
from host.worker import Worker, WorkerConfig
m = load_model(cfg, prepare(cfg))
w = Worker(m, WorkerConfig(n_ctx=512, n_batch=64, n_seq_max=2)).start()
first = w.submit("mod_a", prompt=sys.argv[1], max_tokens=400, temperature=0.0)
tokens = []
first.on_token = tokens.append
deadline = time.monotonic() + 120
while not tokens and time.monotonic() < deadline:
    w.pump(0.01); time.sleep(0.005)
print("READY", flush=True)
frames = 0
while not first.done() and time.monotonic() < deadline:
    w.pump(0.004); time.sleep(1 / 60); frames += 1
later = w.submit("mod_b", prompt="hello", max_tokens=4)
w.wait(later, timeout=10)
for _ in range(30):  # the frame loop goes on
    w.pump(0.004); time.sleep(1 / 60); frames += 1
w.shutdown()
m.close()
print(json.dumps({"first": first.result.to_plain(), "later": later.result.to_plain(), "frames": frames,
                  "streamed": len(tokens)}), flush=True)
"""


def test_a_server_dying_mid_generation_stops_inference_not_the_game(two_servers):
    """With a worker, Relic parks ggml-rpc's failing thread instead of letting it abort the process."""
    code, out, err = _kill_mid_generation(_WORKER_GAME, two_servers)
    assert code == 0, err[-3000:]
    res = json.loads(out.strip().splitlines()[-1])
    assert res["streamed"] > 0 and res["frames"] > 30
    for key in ("first", "later"):
        assert res[key]["finish_reason"] == "error"
        assert "an RPC server was lost mid-generation" in res[key]["error"]
        assert "Remote RPC server crashed" in res[key]["error"]
    lines = [ln for ln in err.splitlines() if ln.startswith("relic: an RPC server stopped answering")]
    assert len(lines) == 1 and "the game goes on" in lines[0], err[-2000:]
    assert two_servers[0].alive()
