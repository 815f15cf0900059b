-- relic_imgui: the Lua half of CET's ImGui table (the host half: host/ui/imgui_api.py).
-- Every function is a tail call into the host's dispatcher, so an error is
-- reported at the mod's own line.  A few need Lua values the host cannot make
-- inside a call: textures (objects with `size` and `Release`), ImVec2/ImVec4
-- arguments (flattened to numbers) and the read-only copy GetStyle returns.
local M = {}

local type, setmetatable, getmetatable, error, tostring, rawset = type, setmetatable, getmetatable, error, tostring, rawset

local vec2_mt = { __tostring = function(v) return "ImVec2(" .. tostring(v.x) .. ", " .. tostring(v.y) .. ")" end }
local vec4_mt = { __tostring = function(v)
  return "ImVec4(" .. tostring(v.x) .. ", " .. tostring(v.y) .. ", " .. tostring(v.z) .. ", " .. tostring(v.w) .. ")"
end }

--- ImVec2.new(x, y): a table with fields x and y (CET's ImVec2 usertype).
local function vec2(x, y) return setmetatable({ x = x or 0, y = y or 0 }, vec2_mt) end
--- ImVec4.new(x, y, z, w): a table with fields x, y, z and w.
local function vec4(x, y, z, w) return setmetatable({ x = x or 0, y = y or 0, z = z or 0, w = w or 0 }, vec4_mt) end

-- an ImVec2/ImVec4 argument as numbers (nil: the defaults; anything else goes
-- through unchanged, so the host names the bad argument)
local function xy(v, dx, dy)
  if v == nil then return dx, dy end
  if type(v) == "table" then return v.x or v[1], v.y or v[2] end
  return v, nil
end
local function xyzw(v, d)
  if v == nil then return d, d, d, d end
  if type(v) == "table" then return v.x or v[1], v.y or v[2], v.z or v[3], v.w or v[4] end
  return v, nil, nil, nil
end

--- The ImGui table: one function per name in `names`; `call(name, ...)` is the
--- host's dispatcher, `release(handle)` frees a texture, `readonly(t, name)`
--- the sandbox's read-only proxy.
function M.functions(call, names, release, readonly)
  local t = {}
  for i = 1, #names do
    local name = names[i]
    t[name] = function(...) return call(name, ...) end
  end

  local handles = setmetatable({}, { __mode = "k" })     -- texture object -> host handle
  local tex_mt = { __index = {
    --- texture:Release(): free it (Image refuses it afterwards).
    Release = function(self)
      local h = handles[self]
      if h then handles[self] = nil; release(h) end
    end,
  }, __tostring = function() return "ImguiTexture" end, __metatable = "ImguiTexture" }

  --- ImGui.LoadTexture(path) -> texture, or nil and a message (CET's convention).
  t.LoadTexture = function(path)
    if type(path) ~= "string" then
      error("ImGui.LoadTexture: bad argument #1 (path): string expected, got " .. type(path), 2)
    end
    local info, err = call("LoadTexture", path)
    if not info then return nil, err end
    local tex = setmetatable({ size = vec2(info.width, info.height) }, tex_mt)
    handles[tex] = info.handle
    return tex, nil
  end

  --- ImGui.Image(texture [, size, uv0, uv1, tintCol, borderCol]) with ImVec2/ImVec4 arguments.
  t.Image = function(tex, size, uv0, uv1, tint, border)
    local sx, sy = xy(size, 0, 0)
    local u0x, u0y = xy(uv0, 0, 0)
    local u1x, u1y = xy(uv1, 1, 1)
    local tr, tg, tb, ta = xyzw(tint, 1)
    local br, bg, bb, ba = xyzw(border, 0)
    return call("Image", handles[tex] or 0, sx, sy, u0x, u0y, u1x, u1y, tr, tg, tb, ta, br, bg, bb, ba)
  end

  --- ImGui.ToastType and ImGui.Toast.new(type [, dismissMs] [, content]), shown by ImGui.ShowToast(toast).
  local toast_types = { None = 0, Success = 1, Warning = 2, Error = 3, Info = 4 }
  t.ToastType = readonly(toast_types, "ImGui.ToastType")
  local toast_mt = { __index = {
    SetTitle = function(self, s) self.title = s end,
    SetContent = function(self, s) self.content = s end,
    SetType = function(self, k) self.type = k end,
    SetWindowFlags = function(self, f) self.flags = f end,      -- accepted; toasts keep their look
  }, __tostring = function() return "Toast" end }
  t.Toast = readonly({ new = function(kind, a, b)
    local dismiss, content = 3000, nil
    if type(a) == "string" then content = a else dismiss, content = a or 3000, b end
    return setmetatable({ type = kind, dismiss = dismiss, content = content }, toast_mt)
  end }, "ImGui.Toast")
  t.ShowToast = function(toast)
    if type(toast) ~= "table" or getmetatable(toast) ~= toast_mt then
      error("ImGui.ShowToast: bad argument #1 (toast): an ImGui.Toast.new(...) expected", 2)
    end
    return call("ShowToast", toast.type, toast.title, toast.content, toast.dismiss)
  end

  --- ImGui.GetStyle(): a read-only copy of the style (change it with PushStyleVar/PushStyleColor).
  t.GetStyle = function()
    return readonly(call("GetStyle"), "ImGuiStyle (a copy: use ImGui.PushStyleVar to change the style)")
  end
  return t
end

--- A table whose every field is 0 (and cannot be written).
function M.zero_flags(name)
  return setmetatable({}, {
    __index = function() return 0 end,
    __newindex = function(_, k) error(name .. " is read-only (cannot set field '" .. tostring(k) .. "')", 2) end,
    __metatable = false,
  })
end

--- Put the flag tables into a mod's globals: Dear ImGui's values (read-only)
--- when `values` has them, tables of zeros otherwise (headless).
function M.expose_flags(env, values, names, readonly)
  for i = 1, #names do
    local name = names[i]
    local t = values and values[name]
    if t then rawset(env, name, readonly(t, name)) else rawset(env, name, M.zero_flags(name)) end
  end
end

-- ImGuiListClipper over the ImGui table `im`: the rows a window can show, from the scroll
-- position and a row height (itemsHeight, or one text line when it is <= 0); headless
-- (no window height) every row.  Each row must be the same height, as in Dear ImGui.
local function clipper_class(im)
  local floor, ceil, max, min = math.floor, math.ceil, math.max, math.min
  local methods = {}
  --- clipper:Begin(itemsCount, itemsHeight)
  function methods:Begin(count, height)
    if type(count) ~= "number" or count ~= count or count < 0 or count > 1e8 then
      error("ImGuiListClipper:Begin: bad argument #1 (itemsCount): a count 0..1e8 expected", 2)
    end
    if height ~= nil and type(height) ~= "number" then
      error("ImGuiListClipper:Begin: bad argument #2 (itemsHeight): number expected", 2)
    end
    self.count = floor(count)
    self.height = (height and height > 0 and height < 1e6) and height or im.GetTextLineHeightWithSpacing()
    self.step, self.DisplayStart, self.DisplayEnd = 0, 0, 0
  end
  --- clipper:Step() -> true while there are rows to draw (DisplayStart .. DisplayEnd - 1, 0-based)
  function methods:Step()
    local n, h = self.count, self.height
    if not n then return false end
    self.step = self.step + 1
    if self.step == 1 then
      self.start_y = im.GetCursorPosY()
      local view = im.GetWindowHeight()
      local first, last = 0, n
      if view > 0 then
        local top = im.GetScrollY() - self.start_y
        first = min(n, max(0, floor(top / h)))
        last = min(n, max(first, ceil((top + view) / h) + 1))
      end
      if first > 0 then im.SetCursorPosY(self.start_y + first * h) end
      self.DisplayStart, self.DisplayEnd = first, last
      if first < last then return true end
    end
    if self.DisplayEnd < n then
      im.SetCursorPosY(self.start_y + n * h)       -- the rows not drawn still take their room
      im.Dummy(0, 0)                               -- (an item makes Dear ImGui count that room)
    end
    self.count, self.DisplayStart, self.DisplayEnd = nil, 0, 0
    return false
  end
  --- clipper:End(): nothing left to do (Step returned false).
  function methods:End() self.count = nil end
  local mt = { __index = methods, __tostring = function() return "ImGuiListClipper" end,
               __metatable = "ImGuiListClipper" }
  return function() return setmetatable({ DisplayStart = 0, DisplayEnd = 0, step = 0 }, mt) end
end

--- ImVec2 and ImVec4 in a mod's globals: `ImVec2.new(x, y)` or `ImVec2(x, y)`, as CET's usertypes;
--- ImGuiListClipper.new() over the mod's ImGui table `im`.
function M.expose_types(env, im)
  local function ctor(fn, name)
    return setmetatable({}, {
      __index = { new = fn },
      __call = function(_, ...) return fn(...) end,
      __newindex = function(_, k) error(name .. " is read-only (cannot set field '" .. tostring(k) .. "')", 2) end,
      __metatable = false,
    })
  end
  rawset(env, "ImVec2", ctor(vec2, "ImVec2"))
  rawset(env, "ImVec4", ctor(vec4, "ImVec4"))
  rawset(env, "ImGuiListClipper", ctor(clipper_class(im), "ImGuiListClipper"))
end

return M
