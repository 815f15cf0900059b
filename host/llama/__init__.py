"""host.llama: the cffi (ABI mode) binding to libllama and its thin object layer."""

from host.llama._native import frees_held, hold_frees
from host.llama.context import Batch, Context, decode_error
from host.llama.generate import generate
from host.llama.lib import Lib, LibPaths, load
from host.llama.model import Model, Vocab, builtin_templates
from host.llama.sampler import SamplerChain
from host.llama.text import Utf8Stream

__all__ = [
    "Batch", "Context", "Lib", "LibPaths", "Model", "SamplerChain", "Utf8Stream", "Vocab",
    "builtin_templates", "decode_error", "frees_held", "generate", "hold_frees", "load",
]
