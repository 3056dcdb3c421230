-- churn: peers arriving, leaving and crashing over time (stdlib module of p2plab), the twin
-- of stdlib/churn.rhai: the same draws in the same order, so the same --seed gives the same
-- events from either language.
--
--   local churn = require "churn"
--   churn.run(peers, 60, 3600, { session = { dist = "weibull", scale = 600, shape = 0.6 } })
--
-- Session and downtime models are tables:
--   { dist = "exp", mean = 600 }                  exponential, mean in seconds
--   { dist = "weibull", scale = 600, shape = 0.6 } Weibull (shape < 1: many short sessions)
--   { dist = "pareto", scale = 60, shape = 1.5 }   Pareto (heavy tail, minimum = scale)
--   a number                                       always that many seconds

local churn = {}

-- One duration in seconds drawn from a session model (see the top of this file).
local function draw(model)
  if type(model) == "number" then
    return model + 0.0
  end
  if type(model) ~= "table" then
    error('churn: a session model is a table like { dist = "exp", mean = 600 } or a number, got '
      .. tostring(model))
  end
  if model.dist == "exp" then
    return rand_exp(model.mean)
  elseif model.dist == "weibull" then
    return rand_weibull(model.scale, model.shape)
  elseif model.dist == "pareto" then
    return rand_pareto(model.scale, model.shape)
  end
  error("churn: unknown dist " .. tostring(model.dist) .. ' (expected "exp", "weibull" or "pareto")')
end

-- Arrival times of a Poisson process of `rate` arrivals per second in [start, stop).
local function poisson_arrivals(rate, start, stop)
  local times = {}
  local t = start + 0.0 + rand_exp(1.0 / rate)
  while t < stop do
    times[#times + 1] = t
    t = t + rand_exp(1.0 / rate)
  end
  return times
end

local join_and_stay

-- Departure, then (unless the run is over) the next join; each step is an at() callback.
local function depart_and_rejoin(node, stop_at, o)
  if o.depart == "leave" then leave(node) else fail_node(node) end
  local back = now() + draw(o.downtime)
  if back < stop_at then
    at(back, function() join_and_stay(node, stop_at, o) end)
  end
end

join_and_stay = function(node, stop_at, o)
  revive(node)
  if o.on_join ~= nil then o.on_join(node) end
  local gone = now() + draw(o.session)
  if gone < stop_at then
    at(gone, function() depart_and_rejoin(node, stop_at, o) end)
  end
end

local KEYS = { session = true, downtime = true, depart = true, on_join = true, online_at_start = true }

local function defaults(opts)
  if opts.session == nil then
    error('churn: opts needs a session model, e.g. { session = { dist = "exp", mean = 600 } }')
  end
  for key in pairs(opts) do
    if not KEYS[key] then
      error("churn: unknown option " .. tostring(key)
        .. " (expected session, downtime, depart, on_join, online_at_start)")
    end
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  if o.downtime == nil then o.downtime = o.session end
  if o.depart == nil then o.depart = "fail" end
  if o.depart ~= "fail" and o.depart ~= "leave" then
    error('churn: depart must be "fail" or "leave", got ' .. tostring(o.depart))
  end
  if o.online_at_start == nil then o.online_at_start = true end
  return o
end

-- On/off churn over `nodes` between experiment times `start` and `stop` (seconds): each node
-- alternates sessions (online) and downtimes (offline) drawn from the models in `opts`:
--   session:  model of session lengths (required)
--   downtime: model of offline periods (default: the session model)
--   depart:   "fail" (crash: fail_node) or "leave" (graceful: SIGTERM) (default "fail")
--   on_join:  a function called with the node each time it (re)joins, e.g. to spawn software
--   online_at_start: nodes start online (default true) or offline (they join after a downtime)
-- Nothing happens before `start` or after `stop`; the script must sleep for churn to unfold.
function churn.run(nodes, start, stop, opts)
  local o = defaults(opts)
  for _, node in ipairs(nodes) do
    if o.online_at_start then
      at(start, function() join_and_stay(node, stop, o) end)
    else
      at(start + draw(o.downtime), function() join_and_stay(node, stop, o) end)
    end
  end
end

-- Nodes arrive one by one at the times of a Poisson process of `rate` arrivals per second
-- from `start`, each stays one session, then departs for good. Nodes beyond the arrivals
-- that fit before `stop` never arrive. Options as for run(), without downtime.
function churn.arrivals(nodes, rate, start, stop, opts)
  local o = defaults(opts)
  o.downtime = stop + 1.0
  local times = poisson_arrivals(rate, start, stop)
  local count = math.min(#times, #nodes)
  for i = 1, count do
    local n = nodes[i]
    at(times[i], function() join_and_stay(n, stop, o) end)
  end
  return count
end

return churn
