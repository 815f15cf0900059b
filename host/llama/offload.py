"""Offload settings: how many layers go to the GPU (or RPC servers), split mode, main GPU.

The values come from the configuration (host.config: ``Config.offload()``),
whose settings are these (arguments, config file or environment):

  RELIC_GPU_LAYERS        a number of layers, or ``all``.  Default: all layers
                          when llama.cpp sees a GPU (or an RPC server), else 0.
  RELIC_EMBED_GPU_LAYERS  the same for the embedding model (default: as above).
  RELIC_SPLIT_MODE        ``layer`` (default), ``row`` or ``none``: how a model is
                          split when more than one device is present.
  RELIC_MAIN_GPU          index (among the offload devices) of the device that
                          holds the whole model with split mode ``none``.

Every model load goes through :func:`resolve`, so the chat model, the
embedding model and the trusted mods (which share the chat model's handle)
follow the same rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from host.errors import DeviceError

ENV_GPU_LAYERS = "RELIC_GPU_LAYERS"
ENV_EMBED_GPU_LAYERS = "RELIC_EMBED_GPU_LAYERS"
ENV_SPLIT_MODE = "RELIC_SPLIT_MODE"
ENV_MAIN_GPU = "RELIC_MAIN_GPU"

SPLIT_MODES = ("none", "layer", "row")
ALL = -1  # llama.cpp: a negative n_gpu_layers means every layer
_MAX_LAYERS = 100_000  # the valid range of a layer count (a setting's bound, not a mod limit)


def parse_gpu_layers(value, what: str = ENV_GPU_LAYERS) -> int | None:
    """``None``/"" (automatic), ``"all"`` (-1) or a count >= 0; DeviceError otherwise."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise DeviceError(f"{what} must be a number of layers or 'all', not {value!r}")
    if isinstance(value, int):
        n = value
    else:
        text = str(value).strip().lower()
        if text in ("", "auto"):
            return None
        if text in ("all", "max", "-1"):
            return ALL
        if not re.fullmatch(r"\d{1,6}", text):
            raise DeviceError(f"{what}={value!r}: use a number of layers (0 = CPU only) or 'all'")
        n = int(text)
    if n < 0:
        return ALL
    if n > _MAX_LAYERS:
        raise DeviceError(f"{what}={n} is not a plausible layer count; use 'all'")
    return n


@dataclass(frozen=True)
class OffloadConfig:
    """What the user asked for; :func:`resolve` turns it into llama.cpp's model params."""

    gpu_layers: int | None = None  # None: automatic; -1: all
    split_mode: str = "layer"
    main_gpu: int = 0



@dataclass(frozen=True)
class Offload:
    """Resolved settings for one model load."""

    n_gpu_layers: int  # what llama.cpp gets (-1 = all)
    split_mode: str
    main_gpu: int
    devices: tuple  # host.llama.devices.Device the layers may go to
    reason: str  # why: "RELIC_GPU_LAYERS=all", "no GPU device", ...


def resolve(lib, config: OffloadConfig | None = None) -> Offload:
    """Turn a config into model params for the devices ``lib`` sees now.

    Raises DeviceError when main GPU names a device that is not there.
    """
    from host.llama.devices import offload_devices

    config = config or OffloadConfig()
    devs = tuple(offload_devices(lib))
    if config.gpu_layers is None:
        n = ALL if devs else 0
        reason = (f"automatic: {len(devs)} offload device(s)" if devs
                  else "automatic: no GPU or RPC device, CPU only")
    else:
        n = config.gpu_layers
        reason = "all layers requested" if n == ALL else f"{n} layer(s) requested"
        if n != 0 and not devs:
            reason += " but there is no GPU or RPC device: CPU only"
    if config.main_gpu and config.main_gpu >= max(1, len(devs)):
        raise DeviceError(f"main_gpu={config.main_gpu} but there are {len(devs)} offload "
                          f"device(s): {', '.join(d.name for d in devs) or 'none'}")
    return Offload(n, config.split_mode, config.main_gpu, devs, reason)


def parse_offloaded(lines) -> tuple[int, int] | None:
    """``(offloaded, total)`` from llama.cpp's load log ("offloaded 3/31 layers to GPU")."""
    for _level, text in lines:
        m = re.search(r"offloaded (\d+)/(\d+) layers to GPU", text)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None
