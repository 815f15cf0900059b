-- rag: a mod's memory stores (see docs/MODDING.md).
--
-- Built once per mod by the host: `factory(bridge, new_handle)` returns the
-- `rag` table.  Store calls run on the inference worker and return handles
-- at once (use on_done-free `await(handle)` inside async, or poll handle:done()).
return function(bridge, new_handle)
  local rag = {}
  local Store = {}
  Store.__index = Store
  Store.__metatable = false
  Store.__tostring = function(s) return "rag store '" .. s.name .. "'" end

  --- Add (or replace) a document: store:add(id, text, meta) -> handle (result.value: {id, status, chunks, embedded}).
  function Store:add(id, text, meta)
    return new_handle(bridge.call(self.name, "add", id, text, meta))
  end

  --- Remove a document by id -> handle (result.value is true when it existed).
  function Store:remove(id)
    return new_handle(bridge.call(self.name, "remove", id))
  end

  --- Search: store:search(query, { k = 5, mode = "hybrid"|"bm25"|"dense", filters = {...}, on_done = fn })
  --- -> handle whose result has hits = { {id=, text=, score=, meta=}, ... } (also given to on_done).
  function Store:search(query, opts)
    local send, on_done = opts or {}, nil
    if type(opts) == "table" and opts.on_done ~= nil then
      if type(opts.on_done) ~= "function" then error("on_done must be a function", 2) end
      send, on_done = {}, opts.on_done
      for k, v in pairs(opts) do
        if k ~= "on_done" then send[k] = v end
      end
    end
    return new_handle(bridge.call(self.name, "search", query, send), nil, on_done)
  end

  --- Open (creating on first use) the store `name`: a SQLite file in the mod's folder.
  function rag.open(name)
    bridge.check_name(name)
    return setmetatable({ name = name, __relic_store = name }, Store)
  end

  return rag
end
