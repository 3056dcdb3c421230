-- conditions: network conditions that change over time (stdlib module of p2plab), the twin of
-- stdlib/conditions.rhai: the same shape() and link_groups() calls at the same times, so the
-- same scenario gives the same events from either language, and the same errors (the values
-- in them written by str(), as Rhai's `${v}` writes them).
--
--   local cond = require "conditions"
--   cond.ramp(peers, "down", "10mbit", "1mbit", 30, 60, 9)   -- 10 -> 1 Mbit/s from 30 s to 90 s
--   cond.on_off(peers[1], 20, 5, 10, 300)                     -- up 20 s, down 5 s, from 10 s
--   cond.replay_delay("eu", "us", "traces/rtt.trace", {})     -- a delay trace on a group pair
--
-- Every function schedules its changes with at() and returns at once: the script goes on, and
-- the changes happen while it sleeps. Times are experiment times; values take units like the
-- rest of the API: "2mbit", "30ms", "10s", or numbers in base units (bits/s, seconds). A
-- target is what shape() takes: a Node, a table of Nodes or a group name.

local conditions = {}

-- Rust's f64::round, half away from zero, as an integer.
local function round(v)
  if v < 0 then return -round(-v) end
  local i = math.floor(v)
  if v - i >= 0.5 then i = i + 1 end
  return i
end

-- A copy of a table argument for the steps to come: a Rhai function gets its own copy of an
-- array or a map, so a table the script changes after the call changes nothing here.
local function copy(v, depth)
  depth = depth or 0
  if type(v) ~= "table" or depth > 64 then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = copy(x, depth + 1) end
  return c
end

-- The shape keys ramp() and square() change, and how their values are read.
local function value_of(key, v)
  if key == "up" or key == "down" then
    return rate_bits(v)
  elseif key == "latency" or key == "jitter" then
    return duration_secs(v)
  elseif key == "loss" then
    if type(v) == "number" then return v + 0.0 end
    error("conditions: loss is a number between 0.0 and 1.0, got " .. str(v))
  end
  error('conditions: key must be "up", "down", "latency", "jitter" or "loss", got ' .. str(key))
end

-- A value between a and b (fraction f of the way), rates rounded to whole bits/s.
local function between(key, a, b, f)
  local v = a + (b - a) * f
  if key == "up" or key == "down" then return round(v) end
  return v
end

-- A shape() table setting one key.
local function change(key, v)
  return { [key] = v }
end

-- Whether v is a map: a table whose keys are all names (an empty table is one).
local function is_map(v)
  if type(v) ~= "table" then return false end
  for k in pairs(v) do
    if type(k) ~= "string" then return false end
  end
  return true
end

-- Rejects an options value that is not a map, or has keys `what` does not know (the first in
-- name order, as Rhai goes through a map).
local function check_opts(what, opts, allowed)
  if not is_map(opts) then
    error("conditions: " .. what .. " takes its options as a map, like { start = 10 }, got "
      .. str(opts))
  end
  local known = {}
  for _, k in ipairs(allowed) do known[k] = true end
  local keys = {}
  for k in pairs(opts) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, key in ipairs(keys) do
    if not known[key] then
      error("conditions: " .. what .. ": unknown option " .. key .. " (expected " .. str(allowed)
        .. ")")
    end
  end
end

-- { start, stop } in seconds, stop not before start.
local function window(what, start, stop)
  local s = duration_secs(start)
  local e = duration_secs(stop)
  if e < s then
    error("conditions: " .. what .. ": end (" .. str(e) .. " s) is before start (" .. str(s)
      .. " s)")
  end
  return { s, e }
end

-- shape(target, opts) at experiment time t: one step of the conditions. opts is checked
-- when the step happens (the error then names the sleep during which it did).
function conditions.step(target, t, opts)
  target, opts = copy(target), copy(opts)
  return at(duration_secs(t), function() shape(target, opts) end)
end

-- Changes `key` ("up", "down", "latency", "jitter" or "loss") linearly from `from` to `to`
-- over `duration` seconds from `start`, in `steps` equal steps: steps + 1 shape calls, the
-- first at `start` with `from`, the last at start + duration with `to`.
function conditions.ramp(target, key, from, to, start, duration, steps)
  target = copy(target)
  local a = value_of(key, from)
  local b = value_of(key, to)
  local t0 = duration_secs(start)
  local d = duration_secs(duration)
  if math.type(steps) ~= "integer" or steps < 1 then
    error("conditions: ramp: steps must be a whole number ≥ 1, got " .. str(steps))
  end
  for i = 0, steps do
    local f = i / steps
    local v = change(key, between(key, a, b, f))
    at(t0 + d * f, function() shape(target, v) end)
  end
end

-- One half period of square() or on_off(): `now` gets `this_half`, the next half the other.
local function alternate(target, this_half, other, half, t, stop)
  shape(target, this_half)
  local next_t = t + half
  if next_t < stop then
    at(next_t, function() alternate(target, other, this_half, half, next_t, stop) end)
  end
end

-- Alternates `key` between `high` (the first half of each period, from `start`) and `low`
-- (the second half) until `stop`: a change at every half period in [start, stop). The last
-- value stays after `stop`.
function conditions.square(target, key, low, high, period, start, stop)
  target = copy(target)
  local lo = change(key, value_of(key, low))
  local hi = change(key, value_of(key, high))
  local p = duration_secs(period)
  if p <= 0.0 then
    error("conditions: square: period must be longer than 0, got " .. str(period))
  end
  local w = window("square", start, stop)
  if w[1] < w[2] then
    at(w[1], function() alternate(target, hi, lo, p / 2.0, w[1], w[2]) end)
  end
end

local link_up

-- The steps of on_off(): down at `t` until `t + down` (or `stop`), then up for `up`.
local function link_down(target, up, down, t, stop)
  shape(target, { loss = 1.0 })
  local back = t + down
  local back_at = back < stop and back or stop
  at(back_at, function() link_up(target, up, down, back_at, stop) end)
end

link_up = function(target, up, down, t, stop)
  shape(target, { loss = 0.0 })
  if t + up < stop then
    at(t + up, function() link_down(target, up, down, t + up, stop) end)
  end
end

-- A link that goes down and up: from `start`, `on` seconds up, then `off` seconds down, and
-- again, until `stop`, where it is up. Down is loss 1.0 on the node's link (both directions),
-- up is loss 0.0: the node and its programs live on and their connections time out or
-- recover as over a real outage, where fail_node would crash them (that is churn's job).
-- Any loss the link had is replaced.
function conditions.on_off(target, on, off, start, stop)
  target = copy(target)
  local up = duration_secs(on)
  local down = duration_secs(off)
  if up <= 0.0 or down <= 0.0 then
    error("conditions: on_off: on and off must be longer than 0, got " .. str(on) .. " and "
      .. str(off))
  end
  local w = window("on_off", start, stop)
  if w[1] + up < w[2] then
    at(w[1] + up, function() link_down(target, up, down, w[1] + up, w[2]) end)
  end
end

-- One pass of a series of { t, value } points (t from 0 to `period`), trace time 0 at `t0`:
-- applies the value of the point the pass is in now (unless it is `last`, the value the
-- previous pass ended on), schedules each later point before `stop` where the value changes,
-- and the next pass at its start. Scheduling a pass at a time keeps few callbacks pending,
-- however long the replay.
local function play_pass(apply, points, period, t0, stop, last)
  local now_in = now() - t0
  local current = 1
  for i = 1, #points do
    if points[i][1] <= now_in then current = i end
  end
  if points[current][2] ~= last then apply(points[current][2]) end
  for i = current + 1, #points do
    local t = t0 + points[i][1]
    if t >= stop then return end
    if points[i][2] ~= points[i - 1][2] then
      local v = points[i][2]
      at(t, function() apply(v) end)
    end
  end
  if period ~= nil and t0 + period < stop then
    local next_t = t0 + period
    local ended_on = points[#points][2]
    at(next_t, function() play_pass(apply, points, period, next_t, stop, ended_on) end)
  end
end

-- start, offset and stop of a replay, in seconds: stop defaults to one period (forever for a
-- delay trace that does not repeat).
local function replay_window(what, opts, period)
  local start = now()
  if opts.start ~= nil then start = duration_secs(opts.start) end
  local offset = 0.0
  if opts.offset ~= nil then offset = duration_secs(opts.offset) end
  -- Rhai's % on floats is fmod (the sign of the dividend), not Lua's %.
  if period ~= nil then offset = math.fmod(offset, period) end
  local stop
  if opts["end"] ~= nil then
    stop = duration_secs(opts["end"])
  elseif period ~= nil then
    stop = start + period
  else
    stop = 1e300
  end
  if stop < start then
    error("conditions: " .. what .. ": end (" .. str(stop) .. " s) is before start ("
      .. str(start) .. " s)")
  end
  return { start, offset, stop }
end

-- Replays a rate trace (Mahimahi's format) onto the `down` (or `up`) rate of `target` with
-- shape, one constant rate per window, from trace_rates(). Options:
--   key:      "down" (default) or "up"
--   window:   the length each rate holds, default 1 s
--   start:    experiment time the replay begins, default now()
--   offset:   trace time it begins at, default 0
--   end:      experiment time it stops, default one pass (start + the trace's length); a
--             later end repeats the trace (write it ["end"] = ..., `end` is a Lua keyword)
--   min_rate: the lowest rate replayed, default "100kbit": a window below it (one without
--             any opportunity has rate 0) gets it instead, since shape takes no rate of 0
--             and packets queued at a tiny rate would leave long after the outage ended
-- Every node of `target` follows the same rates at the same times. A node's own link
-- plays a trace exactly with shape's down_trace/up_trace; this is for rates over seconds.
function conditions.replay_rate(target, file, opts)
  target = copy(target)
  check_opts("replay_rate", opts, { "key", "window", "start", "offset", "end", "min_rate" })
  local key = "down"
  if opts.key ~= nil then key = opts.key end
  if key ~= "down" and key ~= "up" then
    error('conditions: replay_rate: key must be "down" or "up", got ' .. str(key))
  end
  local series
  if opts.window ~= nil then
    series = trace_rates(file, opts.window)
  else
    series = trace_rates(file)
  end
  local floor = rate_bits(opts.min_rate ~= nil and opts.min_rate or "100kbit")
  local points = {}
  for i, p in ipairs(series.points) do
    points[i] = { p[1], p[2] < floor and floor or p[2] }
  end
  local w = replay_window("replay_rate", opts, series.period)
  local apply = function(v) shape(target, change(key, v)) end
  at(w[1], function() play_pass(apply, points, series.period, w[1] - w[2], w[3], nil) end)
end

-- Replays a delay trace (`<time ms> <latency ms>` lines) onto the latency between groups
-- `group_a` and `group_b` with link_groups, from trace_delays(). Options:
--   start, offset, end: as for replay_rate(); a trace without an end line plays once and
--             its last latency stays
--   jitter, loss: given to every link_groups call (default 0), since each call sets all
--             three
function conditions.replay_delay(group_a, group_b, file, opts)
  check_opts("replay_delay", opts, { "start", "offset", "end", "jitter", "loss" })
  local series = trace_delays(file)
  local jitter, loss = copy(opts.jitter), copy(opts.loss)
  local w = replay_window("replay_delay", opts, series.period)
  local apply = function(v)
    link_groups(group_a, group_b, { jitter = jitter, loss = loss, latency = v })
  end
  at(w[1], function() play_pass(apply, series.points, series.period, w[1] - w[2], w[3], nil) end)
end

return conditions
