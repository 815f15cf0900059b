-- grammar: constrained output for llm calls (see docs/MODDING.md).
--
-- Built once per mod by the host: `factory(bridge)` returns the `grammar`
-- table.  Every constructor validates at once and raises a Lua error naming
-- the problem; the returned object goes into any llm call as `grammar = g`.
--
-- A grammar counts against the mod's quota until the garbage collector takes
-- its object (a __gc proxy from the host's `gc_proxy` notes the id; the next
-- construction hands those ids back, after one full collection if the quota
-- is reached).
return function(bridge, gc_proxy)
  local grammar = {}
  local G = { __metatable = false }
  G.__index = G
  G.__tostring = function(g) return "grammar(" .. g.kind .. ")" end
  local collected = {}
  local anchors = setmetatable({}, { __mode = "k" })

  local function wrap(id, kind)
    local g = setmetatable({ __relic_grammar = id, kind = kind }, G)
    if gc_proxy ~= nil then anchors[g] = gc_proxy(function() collected[#collected + 1] = id end) end
    return g
  end

  -- bridge.make raises at this file's line; re-raise at the mod's call site
  -- (level 4: call_make <- make <- grammar.x <- the mod) so the error names the modder's line.
  local bridge_make = bridge.make
  local function call_make(...)
    local ok, id, problem = pcall(bridge_make, ...)
    if not ok then error((string.gsub(tostring(id), "^relic/grammar%.lua:%d+: ", "")), 4) end
    return id, problem
  end

  local function take_collected()
    local ids = collected
    collected = {}
    return ids
  end

  local function make(...)
    local id, problem = call_make(take_collected(), ...)
    if id == nil then   -- over the quota: give back what the GC can take, then try once more
      collectgarbage("collect")
      collectgarbage("collect")   -- the first frees the objects, the second their __gc proxies
      id, problem = call_make(take_collected(), ...)
      if id == nil then error(problem, 3) end
    end
    return id
  end

  -- Size caps checked here first, before the host copies anything (the host
  -- checks them again): an oversized input costs the mod nothing but the error.
  local limits = bridge.limits or {}
  local function too_big(what, n, limit, unit)
    if limit and n > limit then
      error(string.format("%s is %d %s; the limit is %d", what, n, unit, limit), 3)
    end
  end

  --- A grammar from GBNF text (llama.cpp's grammar format); root defaults to "root".
  function grammar.gbnf(text, root)
    if type(text) ~= "string" then error("grammar.gbnf expects GBNF text", 2) end
    too_big("the GBNF text", #text, limits.max_gbnf_bytes, "bytes")
    return wrap(make("gbnf", text, root or "root"), "gbnf")
  end

  --- JSON matching a JSON Schema given as a Lua table; results carry `value`.
  function grammar.schema(schema)
    if type(schema) ~= "table" then error("grammar.schema expects a table (a JSON Schema)", 2) end
    return wrap(make("schema", schema), "schema")
  end

  --- Exactly one of the given strings.
  function grammar.choice(options)
    if type(options) ~= "table" then error("grammar.choice expects a list of strings", 2) end
    too_big("the choice list", #options, limits.max_choices, "options")
    return wrap(make("choice", options), "choice")
  end

  --- A tool call: {"name": ..., "arguments": {...}} for one of { {name=, parameters=schema}, ... }.
  function grammar.tool_call(tools)
    if type(tools) ~= "table" then error("grammar.tool_call expects a list of tools", 2) end
    return wrap(make("tool_call", tools), "tool_call")
  end

  --- `inner` switched on only after a trigger: { words = {...}, patterns = {...} }.
  function grammar.lazy(inner, triggers)
    if getmetatable(inner) ~= false or type(inner) ~= "table" or inner.__relic_grammar == nil then
      error("grammar.lazy expects a grammar object first", 2)
    end
    if type(triggers) ~= "table" then error("grammar.lazy expects { words = {...} } or { patterns = {...} }", 2) end
    return wrap(make("lazy", inner.__relic_grammar, triggers), "lazy")
  end

  return grammar
end
