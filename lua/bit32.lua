-- bit32: CET's `bit32` is LuaJIT's `bit` library under that name (sol2 opens
-- it so for LuaJIT), so the same functions are here with the same results
-- (signed 32-bit numbers).  Lua 5.2's extra names are added for mods written
-- against real bit32: btest, extract, replace, lrotate, rrotate.
local bit = bit
local band, bor, bnot, lshift, rshift, rol, ror = bit.band, bit.bor, bit.bnot, bit.lshift,
  bit.rshift, bit.rol, bit.ror

local bit32 = {}
for k, v in pairs(bit) do bit32[k] = v end

local function field(f, w, fname)
  w = w or 1
  if type(f) ~= "number" or type(w) ~= "number" or f < 0 or w <= 0 or f + w > 32 then
    error("bad argument to '" .. fname .. "' (trying to access non-existent bits)", 3)
  end
  return f, w
end

--- bit32.btest(...) -> true when the bitwise and of the arguments is not 0.
function bit32.btest(...) return band(...) ~= 0 end

--- bit32.extract(n, field [, width]) -> the bits field..field+width-1 of n.
function bit32.extract(n, f, w)
  f, w = field(f, w, "extract")
  local mask = w == 32 and -1 or lshift(1, w) - 1
  return band(rshift(n, f), mask)
end

--- bit32.replace(n, v, field [, width]) -> n with those bits replaced by v.
function bit32.replace(n, v, f, w)
  f, w = field(f, w, "replace")
  local mask = w == 32 and -1 or lshift(1, w) - 1
  return bor(band(n, bnot(lshift(mask, f))), lshift(band(v, mask), f))
end

bit32.lrotate, bit32.rrotate = rol, ror
return bit32
