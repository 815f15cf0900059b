-- llm: the mod-facing LLM module (see docs/MODDING.md).
--
-- Built once per mod by the host: `factory(bridge)` returns the `llm` table.
-- `bridge` holds host functions bound to this mod; they only enqueue work for
-- the inference worker and return at once.  Results come back later, on the
-- frame thread, through `deliver(id, kind, payload)`, which the host calls.
--
-- A handle is a table: `handle.id`, `handle:cancel()`, `handle:done()`,
-- `handle:result()`; `await(handle)` works inside `async` coroutines.
--
-- Sessions count against the mod's host-side quota until closed; one the mod
-- drops is closed after the garbage collector takes it: `gc_proxy` (given by
-- the host, built from what the mod's environment lacks) makes a userdata whose
-- __gc notes the id, and the next session creation hands those ids to the host.
return function(bridge, gc_proxy)
  local llm = {}
  local pending = {}   -- request id -> handle, until its result arrives
  local collected = {} -- ids of sessions the GC took, for the host
  local anchors = setmetatable({}, { __mode = "k" })   -- session -> its __gc proxy
  local MAX_TOKENIZE = bridge.max_tokenize_bytes

  local function watch(obj, id)
    if gc_proxy ~= nil then anchors[obj] = gc_proxy(function() collected[#collected + 1] = id end) end
  end

  local function take_collected()
    local ids = collected
    collected = {}
    return ids
  end

  -- Create through the host: call(dead_ids) makes the bridge call.  Over a quota,
  -- collect garbage (dropped sessions give their quota back) and try once more
  -- before raising the host's message at the mod's call site.
  local function create(call)
    local a, b = call(take_collected())
    if a == nil then
      collectgarbage("collect")
      collectgarbage("collect")   -- the first frees the objects, the second their __gc proxies
      a, b = call(take_collected())
      if a == nil then error(b, 3) end
    end
    return a, b
  end

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

  -- checked here too (the host checks again) so the error points at the mod's own line
  local PRIORITIES = { player = true, normal = true, background = true }
  local function check_priority(value, where, level)
    if value ~= nil and not PRIORITIES[value] then
      error(string.format('%s: priority must be "player", "normal" or "background", got %s', where,
        type(value) == "string" and ("'" .. value .. "'") or tostring(value)), level + 1)
    end
  end

  local function check_callbacks(opts)
    if opts.on_token ~= nil and type(opts.on_token) ~= "function" then
      error("on_token must be a function", 3)
    end
    if opts.on_done ~= nil and type(opts.on_done) ~= "function" then
      error("on_done must be a function", 3)
    end
  end

  -- tools = { name = { description =, parameters =, run = fn(args) } }: the spec for the host
  -- (no functions) and the run functions, which stay here; nil when opts has no tools.
  local TOOL_KEYS = { tools = true, on_tool = true, max_tool_calls = true, tool_choice = true, say_pattern = true }
  local function tool_extra(opts)
    return { max_tool_calls = opts.max_tool_calls, tool_choice = opts.tool_choice, say_pattern = opts.say_pattern }
  end
  local function split_tools(opts, where)
    if opts.tools == nil then return nil end
    if type(opts.tools) ~= "table" then error(where .. ": tools must be a table", 4) end
    if opts.on_tool ~= nil and type(opts.on_tool) ~= "function" then error(where .. ": on_tool must be a function", 4) end
    local spec, runs = {}, {}
    for name, t in pairs(opts.tools) do
      if type(name) ~= "string" or type(t) ~= "table" or type(t.run) ~= "function" then
        error(where .. ": tool " .. tostring(name) .. " must be a table with run = function(args)", 4)
      end
      spec[name] = { description = t.description, parameters = t.parameters }
      runs[name] = t.run
    end
    local rest = {}
    for k, v in pairs(opts) do
      if not TOOL_KEYS[k] then rest[k] = v end
    end
    return spec, runs, rest
  end

  local function tool_handle(id, opts, runs)
    local h = new_handle(id, opts.on_token, opts.on_done)
    h._runs, h._on_tool = runs, opts.on_tool
    return h
  end

  -- A host function's error (a bad option, a model without a chat template) raised at the mod's
  -- own line, `level` frames up from the caller of host_call, not at this file's.
  local function host_call(level, fn, ...)
    local res = { pcall(fn, ...) }
    if not res[1] then error((string.gsub(tostring(res[2]), "^relic/llm%.lua:%d+: ", "")), level + 1) end
    return unpack(res, 2, table.maxn(res))
  end

  local function submit(kind, opts)
    if type(opts) ~= "table" then
      error("llm." .. kind .. " takes one table argument, e.g. llm." .. kind .. "{ prompt = 'hi' }", 3)
    end
    check_callbacks(opts)
    check_priority(opts.priority, "llm." .. kind, 2)
    local spec, runs, rest = split_tools(opts, "llm." .. kind)
    if spec ~= nil then
      if kind ~= "chat" then error("tools are for llm.chat and sessions", 3) end
      return tool_handle(host_call(2, bridge.chat_tools, rest, spec, tool_extra(opts)), opts, runs)
    end
    local id = host_call(2, bridge.submit, kind, opts)
    return new_handle(id, opts.on_token, opts.on_done)
  end

  --- llm.generate{ prompt=, max_tokens=, temperature=, seed=, stop={...}, sampler={...},
  ---   grammar=, schema=, priority="player"|"normal"|"background", on_token=fn(text), on_done=fn(result) } -> handle
  function llm.generate(opts)
    return submit("generate", opts)
  end

  --- llm.chat{ messages={ {role=, content=}, ... }, <same options as generate> } -> handle.
  --- With tools = { name = { description=, parameters=<JSON Schema>, run=fn(args) } } the model
  --- speaks or calls a tool (on_tool=fn(name, args) is told first; max_tool_calls caps the loop;
  --- tool_choice="required" makes the first step a tool call; say_pattern="<regex>" is what the spoken text must match);
  --- result.text is what it said, result.tool_calls what it did.
  function llm.chat(opts)
    return submit("chat", opts)
  end

  local function check_size(text, what)
    if type(text) ~= "string" then error("llm." .. what .. " expects a string", 3) end
    if #text > MAX_TOKENIZE then
      error(string.format("llm.%s: the text is %d bytes; the limit for this synchronous call is %d "
        .. "(split it, or send it with llm.generate)", what, #text, MAX_TOKENIZE), 3)
    end
  end

  --- Token ids of a text (synchronous, cheap; at most MAX_TOKENIZE bytes).
  function llm.tokenize(text)
    check_size(text, "tokenize")
    return bridge.tokenize(text)
  end

  --- Number of tokens in a text (synchronous, cheap; at most MAX_TOKENIZE bytes).
  function llm.count(text)
    check_size(text, "count")
    return bridge.count(text)
  end

  -- Sessions -------------------------------------------------------------
  local Session = {}
  Session.__index = Session
  Session.__metatable = false

  --- One user turn; the reply streams like llm.chat. opts: max_tokens, temperature,
  --- seed, stop, sampler, grammar, schema, priority (default: the session's), on_token, on_done.
  function Session:say(text, opts)
    if type(text) ~= "string" then error("session:say expects a string", 2) end
    opts = opts or {}
    if type(opts) ~= "table" then error("session:say options must be a table", 2) end
    check_callbacks(opts)
    check_priority(opts.priority, "session:say", 2)
    if self._tools ~= nil then
      if opts.on_tool ~= nil and type(opts.on_tool) ~= "function" then error("on_tool must be a function", 2) end
      local rest = {}
      for k, v in pairs(opts) do
        if not TOOL_KEYS[k] then rest[k] = v end
      end
      local h = tool_handle(bridge.say_tools(self.id, text, rest, self._tools, tool_extra(opts)), opts, self._runs)
      h._on_tool = opts.on_tool or self._on_tool
      return h
    end
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
    local s = setmetatable({ id = id, loaded = loaded }, Session)
    watch(s, id)
    return s
  end

  --- llm.session{ system=, sampler={...}, overflow="drop_oldest"|"error"|"shift"|"summarize", template=,
  ---   priority="player"|"normal"|"background" (its turns' default), memory=store, tools={ name = { description=, parameters=, run=fn(args) } }, on_tool=fn(name, args) }
  --- With tools, each say() lets the model speak or act (see llm.chat).
  function llm.session(opts)
    opts = opts or {}
    if type(opts) ~= "table" then error("llm.session takes one table argument", 2) end
    check_priority(opts.priority, "llm.session", 2)
    local spec, runs, rest = split_tools(opts, "llm.session")
    if spec == nil then
      return wrap_session(create(function(dead) return bridge.session_create(opts, nil, dead) end))
    end
    local s = wrap_session(create(function(dead) return bridge.session_create(rest, spec, dead) end))
    s._tools, s._runs, s._on_tool = spec, runs, opts.on_tool
    return s
  end

  --- A session saved with session:save(name); `session.loaded` is a handle for the load.
  --- opts: { memory = store } (a store is not saved with the session).
  function llm.load_session(name, opts)
    if type(name) ~= "string" then error("llm.load_session expects a name", 2) end
    if opts ~= nil and type(opts) ~= "table" then error("llm.load_session options must be a table", 2) end
    local id, load_id = create(function(dead) return bridge.session_load(name, opts or {}, dead) end)
    return wrap_session(id, new_handle(load_id))
  end

  -- Called by the host on the frame thread: kind is "token" or "done".
  local function deliver(id, kind, payload)
    local h = pending[id]
    if h == nil then return end
    if kind == "token" then
      if h._on_token then h._on_token(payload) end
    elseif kind == "tool" then
      -- a tool call of a turn with tools: tell on_tool, run the tool, return its result to the host
      local name, args = payload.name, payload.arguments
      if h._on_tool then h._on_tool(name, args) end
      local run = h._runs and h._runs[name]
      if run == nil then return { error = "no tool named " .. tostring(name) } end
      return run(args)
    else
      pending[id] = nil
      h._result = payload
      if h._on_done then h._on_done(payload) end
    end
  end

  return llm, deliver, new_handle
end
