--- async: coroutines the host resumes, so mods can wait without blocking.
--
--   local task = async(function(a, b)
--     local r = await(llm.generate{ prompt = "hi" })   -- any awaitable
--     return r.text
--   end, a, b)
--
-- An awaitable is any table (or userdata) with methods done() -> boolean and
-- result() -> value.  await(h) returns h:result() at once when h:done() is
-- already true; otherwise the task is suspended and the host resumes it, from
-- its frame loop, on the first frame where h:done() is true.  async() runs the
-- function at once up to its first await and returns the task, which is itself
-- awaitable (result() is the function's first return value) and has error()
-- -> message or nil.  await() outside a function started by async() is an
-- error, and so is a bare coroutine.yield() inside one: the host is never
-- yielded across.

local type, error, format, select, unpack = type, error, string.format, select, unpack
local setmetatable, pcall, tostring = setmetatable, pcall, tostring
local co_create, co_resume, co_running, co_status, co_yield =
  coroutine.create, coroutine.resume, coroutine.running, coroutine.status, coroutine.yield

local AWAIT = setmetatable({}, { __metatable = "async.await" })   -- yield marker

local M = {}

--- M.new(opts) -> scheduler. opts: report(msg), traceback(co, err) -> msg,
--- max_tasks, stats (table whose .waiting and .tasks fields are kept current).
function M.new(opts)
  local report, traceback = opts.report, opts.traceback
  local max_tasks = opts.max_tasks or 1024
  local stats = opts.stats or {}
  local tasks = setmetatable({}, { __mode = "k" })   -- coroutine -> task
  local waiting = {}                                  -- tasks suspended in await
  local running = 0

  local task_methods = {}
  local task_mt = { __index = task_methods, __metatable = "async.task" }
  function task_methods:done() return self._done end
  function task_methods:result() return self._result end
  function task_methods:error() return self._error end

  local function finish(task, result, err)
    task._done, task._result, task._error = true, result, err
    running = running - 1
    stats.tasks = running
  end

  local function awaitable(h)
    local th = type(h)
    if th ~= "table" and th ~= "userdata" then return false end
    return type(h.done) == "function" and type(h.result) == "function"
  end

  -- Resume a task and file it according to what it did.
  local function step_task(task, ...)
    local co = task._co
    local ok, a, b = co_resume(co, ...)
    if not ok then
      local msg = traceback(co, a)
      finish(task, nil, msg)
      report(msg)
    elseif co_status(co) == "dead" then
      finish(task, a, nil)
    elseif a ~= AWAIT then
      local msg = "async: a task called coroutine.yield(); use await(handle) instead"
      finish(task, nil, msg)
      report(msg)
    else
      task._waiting = b
      waiting[#waiting + 1] = task
      stats.waiting = #waiting
    end
  end

  local function async(fn, ...)
    if type(fn) ~= "function" then
      error("async: expected a function, got " .. type(fn), 2)
    end
    if running >= max_tasks then
      error(format("async: too many unfinished tasks (limit %d per mod)", max_tasks), 2)
    end
    local co = co_create(fn)
    local task = setmetatable({ _co = co, _done = false }, task_mt)
    tasks[co] = task
    running = running + 1
    stats.tasks = running
    step_task(task, ...)
    return task
  end

  local function await(h)
    local co = co_running()
    if not co or not tasks[co] then
      error("await: must be called inside a function started with async()", 2)
    end
    if not awaitable(h) then
      error("await: expected an awaitable (a table with done() and result() methods), got " .. type(h), 2)
    end
    if h:done() then return h:result() end
    return co_yield(AWAIT, h)
  end

  --- Host side: resume every task whose awaitable is done.
  local function step()
    if #waiting == 0 then return end
    local list = waiting
    waiting = {}
    for i = 1, #list do
      local task = list[i]
      local h = task._waiting
      local ok, done = pcall(h.done, h)
      if not ok then
        local msg = "async: awaitable done() failed: " .. tostring(done)
        finish(task, nil, msg)
        report(msg)
      elseif done then
        task._waiting = nil
        local okr, r = pcall(h.result, h)
        if okr then
          step_task(task, r)
        else
          local msg = "async: awaitable result() failed: " .. tostring(r)
          finish(task, nil, msg)
          report(msg)
        end
      else
        waiting[#waiting + 1] = task
      end
    end
    stats.waiting = #waiting
  end

  return { async = async, await = await, step = step }
end

return M
