-- llama_ffi: the raw llama.cpp binding for trusted mods, through LuaJIT's FFI.
--
-- `make(ffi, cdef, libpath, model_addr)` declares the same generated cdef the host
-- uses, loads the same libllama (already in the process, so the same code and
-- state) and returns the `llama` table:
--
--   llama.C       every LLAMA_API function, 1:1 (llama.C.llama_vocab_is_eog(...))
--   llama.ffi     LuaJIT's ffi module
--   llama.model   the model the host loaded (struct llama_model *)
--   llama.vocab   its vocabulary (const struct llama_vocab *)
--
-- Ownership: the host owns `llama.model` and `llama.vocab`: never free them,
-- and do not keep them past onShutdown.  Whatever a mod creates through
-- llama.C (contexts, batches, samplers) is the mod's own: free it with the
-- matching llama_*_free call, or tie it to the GC with ffi.gc, and free it in
-- onShutdown at the latest.  All of it runs on the frame thread and costs frame time.
return function(ffi, cdef, libpath, model_addr)
  ffi.cdef(cdef)
  local C = ffi.load(libpath)
  local model = ffi.cast("struct llama_model *", model_addr)
  return {
    C = C,
    ffi = ffi,
    model = model,
    vocab = C.llama_model_get_vocab(model),
  }
end
