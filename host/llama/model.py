"""Model and Vocab: a loaded GGUF and its tokenizer."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

from host.errors import ModelLoadError, TemplateError, TokenizeError
from host.llama import lib as _lib
from host.llama import log
from host.llama import devices as _devices
from host.llama import offload as _offload
from host.llama._native import NativeObject

_GGUF_MAGIC = b"GGUF"


def _load_reason(lines) -> str:
    errors = [text for level, text in lines if level >= logging.WARNING]
    return "; ".join(errors[-3:]) or "llama.cpp rejected the file (no details logged)"


class Model(NativeObject):
    """A model loaded from a GGUF file.

    ``Model(path)`` raises :class:`~host.errors.ModelLoadError` naming the path
    and the reason for a missing file, a file that is not a GGUF, a truncated
    or corrupt one, or an unsupported architecture; the process survives.

    Offload: ``n_gpu_layers`` (a count, ``"all"`` or None) overrides
    ``offload`` (an :class:`~host.llama.offload.OffloadConfig`, from
    ``Config.offload()``), which defaults to automatic: every layer on the
    offload devices llama.cpp sees (GPUs, registered RPC servers), else the
    CPU.  :attr:`placement` says where the layers went.  ``embed`` is kept for
    callers that mark the embedding model; it changes nothing here.
    """

    kind = "model"

    def __init__(self, path, *, lib=None, n_gpu_layers=None, vocab_only: bool = False,
                 use_mmap: bool = True, offload=None, embed: bool = False):
        self.lib = lib or _lib.load()
        self.path = Path(path)
        _precheck(self.path)
        ffi, C = self.lib.ffi, self.lib.C
        config = offload if offload is not None else _offload.OffloadConfig()
        if n_gpu_layers is not None:
            config = replace(config, gpu_layers=_offload.parse_gpu_layers(n_gpu_layers, "n_gpu_layers"))
        if vocab_only:
            config = replace(config, gpu_layers=0)
        elif config.gpu_layers != 0:  # registered RPC servers must be alive (else llama.cpp aborts)
            _devices.check_registered_alive(self.lib)
        plan = _offload.resolve(self.lib, config)
        params = C.llama_model_default_params()
        params.n_gpu_layers = plan.n_gpu_layers
        params.split_mode = getattr(C, f"LLAMA_SPLIT_MODE_{plan.split_mode.upper()}")
        params.main_gpu = plan.main_gpu
        params.vocab_only = vocab_only
        params.load_mode = C.LLAMA_LOAD_MODE_MMAP if use_mmap else C.LLAMA_LOAD_MODE_NONE
        with log.capture() as lines:
            ptr = C.llama_model_load_from_file(os.fsencode(self.path), params)
        if ptr == ffi.NULL:
            raise ModelLoadError(f"cannot load model {self.path}: {_load_reason(lines)}")
        # owns the model: freed with llama_model_free once it and its contexts are closed
        super().__init__(ptr, C.llama_model_free)
        # borrowed: valid as long as the model is not freed
        self.vocab = Vocab(self, C.llama_model_get_vocab(ptr))
        self.vocab_only = vocab_only
        self.template_override: str | None = None  # a llama.cpp template name used when template= is not given
        self.n_ctx_train = C.llama_model_n_ctx_train(ptr)
        self.n_embd = C.llama_model_n_embd(ptr)
        self.n_layer = C.llama_model_n_layer(ptr)
        # per-layer queries assert (abort the process) on a model without layers
        has_layers = self.n_layer > 0 and not vocab_only
        self.n_head = C.llama_model_n_head(ptr) if has_layers else 0
        self.n_head_kv = C.llama_model_n_head_kv(ptr) if has_layers else 0
        self.offload = plan
        counted = _offload.parse_offloaded(lines)
        total = counted[1] if counted else (self.n_layer + 1 if has_layers else 0)
        # (layers on offload devices, layers in all); llama.cpp counts the output layer too, and
        # logs "offloaded N/N layers to GPU" even when there is no GPU (they stay on the CPU)
        self.offloaded = (counted[0] if counted and plan.devices else 0, total)
        self.placement = _placement(plan, self.offloaded)

    def __repr__(self) -> str:
        return f"<Model {self.path.name}{' closed' if self.closed else ''}>"

    @property
    def description(self) -> str:
        buf = self.lib.ffi.new("char[256]")
        n = self.lib.C.llama_model_desc(self.ptr, buf, 256)
        return self.lib.ffi.string(buf, max(0, min(n, 255))).decode("utf-8", "replace")

    @property
    def size_bytes(self) -> int:
        return int(self.lib.C.llama_model_size(self.ptr))

    @property
    def n_params(self) -> int:
        return int(self.lib.C.llama_model_n_params(self.ptr))

    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as a string, or None when absent."""
        ffi = self.lib.ffi
        size = 256
        while True:
            buf = ffi.new("char[]", size)
            n = self.lib.C.llama_model_meta_val_str(self.ptr, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return ffi.string(buf, n).decode("utf-8", "replace")
            size = n + 1

    def chat_template(self, name: str | None = None) -> str | None:
        """The model's own chat template (a Jinja string), or None."""
        p = self.lib.C.llama_model_chat_template(self.ptr, name.encode() if name else self.lib.ffi.NULL)
        return None if p == self.lib.ffi.NULL else self.lib.ffi.string(p).decode("utf-8", "replace")

    def apply_chat_template(self, messages, *, add_assistant: bool = True, template: str | None = None) -> str:
        """Render ``[{"role":, "content":}, ...]`` with the model's template or a named one.

        llama.cpp recognises a fixed list of templates (see
        :func:`builtin_templates`); an unknown one raises TemplateError.
        """
        ffi, C = self.lib.ffi, self.lib.C
        tmpl = template if template is not None else (self.template_override or self.chat_template())
        if tmpl is None:
            raise TemplateError(f"no chat template in {self.path.name} - is it a base model? pass --template NAME "
                                f"(or RELIC_TEMPLATE, template=), one of {builtin_templates(self.lib)}")
        keep = []
        msgs = ffi.new("llama_chat_message[]", max(1, len(messages)))
        total = 0
        for i, m in enumerate(messages):
            try:
                role, content = m["role"], m["content"]
            except (KeyError, TypeError):
                raise TemplateError(f"message {i + 1} must have 'role' and 'content'") from None
            if not isinstance(role, str) or not isinstance(content, str):
                raise TemplateError(f"message {i + 1}: role and content must be strings")
            r, c = ffi.new("char[]", role.encode("utf-8", "replace")), ffi.new("char[]", content.encode("utf-8", "replace"))
            keep += [r, c]
            msgs[i].role, msgs[i].content = r, c
            total += len(role) + len(content)
        tmpl_c = ffi.new("char[]", tmpl.encode())
        size = 2 * total + 256
        for _ in range(2):
            buf = ffi.new("char[]", size)
            n = C.llama_chat_apply_template(tmpl_c, msgs, len(messages), add_assistant, buf, size)
            if n < 0:
                shown = template if template is not None else "the model's template"
                raise TemplateError(f"chat template not supported by llama.cpp: {shown[:80]!r}; "
                                    f"use one of {builtin_templates(self.lib)}")
            if n <= size:
                return ffi.string(buf, n).decode("utf-8", "replace")
            size = n + 1
        raise TemplateError("chat template output kept growing")  # pragma: no cover


def _placement(plan, offloaded) -> str:
    """Where inference runs, in words: "CPU", "Vulkan0 (31/31 layers)", "RPC0+RPC1+CPU (20/31 layers)"."""
    done, total = offloaded
    if done == 0 or not plan.devices:
        return "CPU"
    devs = plan.devices
    if plan.split_mode == "none":
        devs = devs[plan.main_gpu:plan.main_gpu + 1]
    names = "+".join(d.name for d in devs) + ("+CPU" if done < total else "")
    return f"{names} ({done}/{total} layers)"


def builtin_templates(lib=None) -> list[str]:
    """Names of the chat templates llama.cpp can apply by name."""
    lib = lib or _lib.load()
    n = lib.C.llama_chat_builtin_templates(lib.ffi.NULL, 0)
    arr = lib.ffi.new("const char *[]", n)
    lib.C.llama_chat_builtin_templates(arr, n)
    return [lib.ffi.string(arr[i]).decode() for i in range(n)]


def _precheck(path: Path) -> None:
    """Refuse what would make llama.cpp fail obscurely (or assert)."""
    if not path.exists():
        raise ModelLoadError(f"cannot load model {path}: no such file")
    if not path.is_file():
        raise ModelLoadError(f"cannot load model {path}: not a regular file")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ModelLoadError(f"cannot load model {path}: {exc.strerror}") from exc
    if len(head) < 8:
        raise ModelLoadError(f"cannot load model {path}: file is empty or truncated ({len(head)} bytes)")
    if head[:4] != _GGUF_MAGIC:
        raise ModelLoadError(f"cannot load model {path}: not a GGUF file (starts with {head[:4]!r}, expected b'GGUF')")


class Vocab:
    """The tokenizer of a model (borrowed: valid while the model is open).

    Tokenization is thread-safe in llama.cpp, so this may be used from the
    frame thread while the worker decodes.
    """

    def __init__(self, model: Model, ptr):
        self._model = model
        self._lib = model.lib
        self._vptr = ptr
        C = model.lib.C
        self.n_tokens = C.llama_vocab_n_tokens(ptr)
        self.bos = C.llama_vocab_bos(ptr)
        self.eos = C.llama_vocab_eos(ptr)
        self.eot = C.llama_vocab_eot(ptr)
        self.add_bos = bool(C.llama_vocab_get_add_bos(ptr))
        # token -> piece bytes, filled on first use; one list per 'special' flag
        self._pieces = ([None] * self.n_tokens, [None] * self.n_tokens)
        self._eog = [None] * self.n_tokens
        self._buf = model.lib.ffi.new("char[]", 256)

    @property
    def ptr(self):
        self._model.ptr  # raises ClosedError once the model is closed
        return self._vptr

    def _check_token(self, token: int) -> int:
        if not (0 <= token < self.n_tokens):
            raise TokenizeError(f"token id {token} is out of range (vocabulary has {self.n_tokens} tokens)")
        return token

    def is_eog(self, token: int) -> bool:
        """End of generation (EOS, EOT, ...)? Cached per token."""
        v = self._eog[self._check_token(token)]
        if v is None:
            v = self._eog[token] = bool(self._lib.C.llama_vocab_is_eog(self.ptr, token))
        return v

    def tokenize(self, text, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Text (str or UTF-8 bytes, any length) to token ids.

        Invalid UTF-8 or lone surrogates raise TokenizeError naming the position.
        """
        data = _utf8(text)
        ffi, C = self._lib.ffi, self._lib.C
        cap = len(data) + 8
        while True:
            out = ffi.new("llama_token[]", cap)
            n = C.llama_tokenize(self.ptr, data, len(data), out, cap, add_special, parse_special)
            if n >= 0:
                return list(ffi.unpack(out, n))
            if n == -(2 ** 31):
                raise TokenizeError(f"text of {len(data)} bytes gives more tokens than fit in an int32")
            cap = -n

    def count(self, text, *, add_special: bool = True, parse_special: bool = False) -> int:
        return len(self.tokenize(text, add_special=add_special, parse_special=parse_special))

    def piece(self, token: int, special: bool = True) -> bytes:
        """The bytes a token stands for (cached); may be part of a UTF-8 character."""
        cache = self._pieces[special]
        p = cache[self._check_token(token)]
        if p is None:
            p = cache[token] = self._piece_uncached(token, special)
        return p

    def _piece_uncached(self, token: int, special: bool) -> bytes:
        ffi, C = self._lib.ffi, self._lib.C
        n = C.llama_token_to_piece(self.ptr, token, self._buf, len(self._buf), 0, special)
        if n < 0:
            buf = ffi.new("char[]", -n)
            n = C.llama_token_to_piece(self.ptr, token, buf, -n, 0, special)
            return ffi.buffer(buf, n)[:]
        return ffi.buffer(self._buf, n)[:]

    def detokenize_bytes(self, tokens, *, remove_special: bool = False, unparse_special: bool = False) -> bytes:
        ffi, C = self._lib.ffi, self._lib.C
        tokens = [self._check_token(int(t)) for t in tokens]
        arr = ffi.new("llama_token[]", tokens) if tokens else ffi.NULL
        cap = max(16, 8 * len(tokens))
        while True:
            buf = ffi.new("char[]", cap)
            n = C.llama_detokenize(self.ptr, arr, len(tokens), buf, cap, remove_special, unparse_special)
            if n >= 0:
                return ffi.buffer(buf, n)[:]
            cap = -n

    def detokenize(self, tokens, *, remove_special: bool = False, unparse_special: bool = False) -> str:
        """Token ids to text; bytes that do not form UTF-8 become U+FFFD."""
        return self.detokenize_bytes(tokens, remove_special=remove_special,
                                     unparse_special=unparse_special).decode("utf-8", "replace")


def _utf8(text) -> bytes:
    if isinstance(text, str):
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise TokenizeError(f"text is not valid Unicode: {exc.reason} at character {exc.start}") from None
    if isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TokenizeError(f"text is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
        return data
    raise TokenizeError(f"text must be str or bytes, not {type(text).__name__}")
