--- cron: timers driven by the host's frame clock (CET's Cron, for Relic).
--
-- Mods use the instance the host gives them as the global `Cron`:
--   Cron.After(seconds, fn [, data])   fires once
--   Cron.Every(seconds, fn [, data])   fires repeatedly
--   Cron.NextTick(fn [, data])         fires on the next frame
--   Cron.Halt(timer) / Cron.Pause(timer) / Cron.Resume(timer)
--   Cron.Sleep(seconds)                an awaitable for await()
-- Callbacks get the timer: timer.data, timer.tick (times fired), timer.id.
-- Time is the sum of the deltaTime values the host passes to its frames, not
-- the wall clock, so timers freeze when the game pauses its updates.  A timer
-- fires at most once per frame; an Every timer that falls behind (a long
-- frame) catches up one period per frame, at most 10 periods, without drift.

local type, error, format, setmetatable = type, error, string.format, setmetatable
local xpcall = xpcall

local EPS = 1e-9
local MAX_BACKLOG = 10

local M = {}

--- M.new(opts) -> instance. opts: report(msg), traceback(err) -> msg,
--- max_timers, stats (table whose .timers field is kept current).
function M.new(opts)
  local report, traceback = opts.report, opts.traceback
  local max_timers = opts.max_timers or 4096
  local stats = opts.stats or {}
  local timers, count = {}, 0      -- array in creation order; count of live ones
  local state = setmetatable({}, { __mode = "k" })   -- handle -> private state
  local clock, frame = 0, 0
  local next_id = 0

  local methods = {}
  local handle_mt = { __index = methods, __metatable = "cron.timer" }

  local function check_fn(fn, where)
    if type(fn) ~= "function" then
      error(format("Cron.%s: callback must be a function, got %s", where, type(fn)), 3)
    end
  end

  local function add(delay, interval, fn, data, where)
    if type(delay) ~= "number" or delay ~= delay or delay < 0 then
      error(format("Cron.%s: seconds must be a number >= 0", where), 3)
    end
    check_fn(fn, where)
    if count >= max_timers then
      error(format("Cron.%s: too many active timers (limit %d per mod)", where, max_timers), 3)
    end
    next_id = next_id + 1
    local h = setmetatable({ id = next_id, data = data, tick = 0 }, handle_mt)
    state[h] = { remaining = delay, interval = interval, fn = fn, paused = false, dead = false }
    timers[#timers + 1] = h
    count = count + 1
    stats.timers = count
    return h
  end

  local function live(h, where)
    local s = state[h]
    if not s then error(format("Cron.%s: not a timer", where), 3) end
    return s
  end

  local api = {}

  function api.After(seconds, fn, data) return add(seconds, nil, fn, data, "After") end

  function api.Every(seconds, fn, data)
    if type(seconds) == "number" and seconds <= 0 then
      error("Cron.Every: seconds must be > 0", 2)
    end
    return add(seconds, seconds, fn, data, "Every")
  end

  function api.NextTick(fn, data) return add(0, nil, fn, data, "NextTick") end

  function api.Halt(h)
    local s = live(h, "Halt")
    if not s.dead then
      s.dead = true
      count = count - 1
      stats.timers = count
    end
  end

  function api.Pause(h) live(h, "Pause").paused = true end
  function api.Resume(h) live(h, "Resume").paused = false end

  function methods:Halt() api.Halt(self) end
  function methods:Pause() api.Pause(self) end
  function methods:Resume() api.Resume(self) end
  function methods:IsActive() local s = state[self]; return s ~= nil and not s.dead end

  --- Cron.Sleep(seconds) -> awaitable that is done once that much frame time
  --- has passed, and never in the frame it was created (so await(Cron.Sleep(0))
  --- waits for the next frame).  result() is the frame time actually waited.
  --- It is a timer underneath, which is what keeps the host ticking the clock.
  function api.Sleep(seconds)
    if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
      error("Cron.Sleep: seconds must be a number >= 0", 2)
    end
    local started, finished = clock, nil
    add(seconds, nil, function() finished = clock end, nil, "Sleep")
    local h = {}
    function h:done() return finished ~= nil end
    function h:result() return finished and finished - started end
    return h
  end

  --- Host side: advance the clock by dt and run what is due.
  local function tick(dt)
    clock = clock + dt
    frame = frame + 1
    local n = #timers    -- timers added by callbacks wait for the next frame
    for i = 1, n do
      local h = timers[i]
      local s = state[h]
      if not s.dead and not s.paused then
        s.remaining = s.remaining - dt
        if s.remaining <= EPS then
          if s.interval then
            -- Catch up at most MAX_BACKLOG periods after a long hitch.
            s.remaining = s.remaining + s.interval
            local floor_ = -MAX_BACKLOG * s.interval
            if s.remaining < floor_ then s.remaining = floor_ end
          else
            s.dead = true
            count = count - 1
          end
          h.tick = h.tick + 1
          local ok, err = xpcall(s.fn, traceback, h)
          if not ok then report(err) end
        end
      end
    end
    -- compact
    local j = 0
    for i = 1, #timers do
      local h = timers[i]
      if not state[h].dead then
        j = j + 1
        timers[j] = h
      end
    end
    for i = #timers, j + 1, -1 do timers[i] = nil end
    stats.timers = count
  end

  return { api = api, tick = tick, time = function() return clock end }
end

return M
