-- llm: the mod-facing LLM module (see shared LUA_API.md).
--
-- Built once per mod by the host: `factory(bridge)` returns the `llm` table.
-- `bridge` holds host functions bound to this mod; they only enqueue work for
-- the inference worker and return at once.  Results come back later, on the
-- frame thread, through `deliver(id, kind, payload)`, which the host calls.
--
-- A handle is a table: `handle.id`, `handle:cancel()`, `handle:done()`,
-- `handle:result()`; `await(handle)` works inside `async` coroutines.
return function(bridge)
  local llm = {}
  local pending = {}   -- request id -> handle, until its result arrives

  local Handle = {}
  Handle.__index = Handle
  Handle.__metatable = false

  --- Ask the worker to stop this request; on_done then reports "cancelled".
  function Handle:cancel()
    if self._result == nil then bridge.cancel(self.id) end
  end

  --- true once the result has arrived (on_done has been called).
  function Handle:done()
    return self._result ~= nil
  end

  --- The result table, or nil while the request runs.
  function Handle:result()
    return self._result
  end

  local function new_handle(id, on_token, on_done)
    local h = setmetatable({ id = id, _on_token = on_token, _on_done = on_done }, Handle)
    pending[id] = h
    return h
  end

  local function check_callbacks(opts)
    if opts.on_token ~= nil and type(opts.on_token) ~= "function" then
      error("on_token must be a function", 3)
    end
    if opts.on_done ~= nil and type(opts.on_done) ~= "function" then
      error("on_done must be a function", 3)
    end
  end

  local function submit(kind, opts)
    if type(opts) ~= "table" then
      error("llm." .. kind .. " takes one table argument, e.g. llm." .. kind .. "{ prompt = 'hi' }", 3)
    end
    check_callbacks(opts)
    local id = bridge.submit(kind, opts)
    return new_handle(id, opts.on_token, opts.on_done)
  end

  --- llm.generate{ prompt=, max_tokens=, temperature=, seed=, stop={...}, sampler={...},
  ---   grammar=, schema=, on_token=fn(text), on_done=fn(result) } -> handle
  function llm.generate(opts)
    return submit("generate", opts)
  end

  --- llm.chat{ messages={ {role=, content=}, ... }, <same options as generate> } -> handle
  function llm.chat(opts)
    return submit("chat", opts)
  end

  --- Token ids of a text (synchronous, cheap).
  function llm.tokenize(text)
    if type(text) ~= "string" then error("llm.tokenize expects a string", 2) end
    return bridge.tokenize(text)
  end

  --- Number of tokens in a text (synchronous, cheap).
  function llm.count(text)
    if type(text) ~= "string" then error("llm.count expects a string", 2) end
    return bridge.count(text)
  end

  -- Sessions -------------------------------------------------------------
  local Session = {}
  Session.__index = Session
  Session.__metatable = false

  --- One user turn; the reply streams like llm.chat. opts: max_tokens, temperature,
  --- seed, stop, sampler, grammar, schema, on_token, on_done.
  function Session:say(text, opts)
    if type(text) ~= "string" then error("session:say expects a string", 2) end
    opts = opts or {}
    if type(opts) ~= "table" then error("session:say options must be a table", 2) end
    check_callbacks(opts)
    local id = bridge.say(self.id, text, opts)
    return new_handle(id, opts.on_token, opts.on_done)
  end

  --- Forget the conversation (the system prompt stays). Returns a handle.
  function Session:reset()
    return new_handle(bridge.session_call(self.id, "reset"))
  end

  --- Save conversation and cached state as `name` in the mod's folder. Returns a handle.
  function Session:save(name)
    if type(name) ~= "string" then error("session:save expects a name", 2) end
    return new_handle(bridge.session_call(self.id, "save", name))
  end

  --- Free the session's sequence now (it is freed with the mod otherwise).
  function Session:close()
    bridge.session_close(self.id)
  end

  local function wrap_session(id, loaded)
    return setmetatable({ id = id, loaded = loaded }, Session)
  end

  --- llm.session{ system=, sampler={...}, overflow="drop_oldest"|"error"|"shift", template=, memory=store }
  function llm.session(opts)
    opts = opts or {}
    if type(opts) ~= "table" then error("llm.session takes one table argument", 2) end
    return wrap_session(bridge.session_create(opts))
  end

  --- A session saved with session:save(name); `session.loaded` is a handle for the load.
  --- opts: { memory = store } (a store is not saved with the session).
  function llm.load_session(name, opts)
    if type(name) ~= "string" then error("llm.load_session expects a name", 2) end
    if opts ~= nil and type(opts) ~= "table" then error("llm.load_session options must be a table", 2) end
    local id, load_id = bridge.session_load(name, opts or {})
    return wrap_session(id, new_handle(load_id))
  end

  -- Called by the host on the frame thread: kind is "token" or "done".
  local function deliver(id, kind, payload)
    local h = pending[id]
    if h == nil then return end
    if kind == "token" then
      if h._on_token then h._on_token(payload) end
    else
      pending[id] = nil
      h._result = payload
      if h._on_done then h._on_done(payload) end
    end
  end

  return llm, deliver, new_handle
end
