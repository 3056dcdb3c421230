-- topology: network graphs to place nodes on (stdlib module of p2plab), the twin of
-- stdlib/topology.rhai: the same graphs, so the same scenario gives the same events.
--
--   local topology = require "topology"
--   local world = topology.continents()
--   local peers = world:place(60, { by = "weight" })
--
-- Every function returns a Topology: `t:place(n, opts)` makes n nodes on its vertices (each
-- vertex is a group named like it; see the book's "Topologies" chapter), `t:path(a, b)` says
-- what lies between two vertices, `t:vertices()` names them. Latencies are one-way.

local topology = {}

-- The value of `key` in `opts`, or `fallback`.
local function opt(opts, key, fallback)
  if opts[key] ~= nil then return opts[key] end
  return fallback
end

-- Refuses options a function does not know.
local function known(what, opts, keys)
  if type(opts) ~= "table" then
    error("topology." .. what .. ': options are a table like { latency = "10ms" }, got '
      .. tostring(opts))
  end
  local allowed = {}
  for _, k in ipairs(keys) do allowed[k] = true end
  for key in pairs(opts) do
    if not allowed[key] then
      error("topology." .. what .. ": unknown option " .. tostring(key) .. " (expected "
        .. table.concat(keys, ", ") .. ")")
    end
  end
end

-- The host bandwidth keys of a vertex, from opts.
local function access(opts, weight)
  return { weight = weight, up = opts.up, down = opts.down }
end

-- A Shadow network graph in GML (path from the script's folder): load_gml(path).
function topology.from_gml(path)
  return load_gml(path)
end

-- A latency matrix in CSV (path from the script's folder): load_latency_csv(path).
function topology.from_csv(path)
  return load_latency_csv(path)
end

-- A hub with `leaves` leaf vertices "leaf1", "leaf2", ... around it, each `latency` from the
-- hub (so two leaves are 2 x latency apart). Leaves weigh 1 and the hub 0, so
-- `place(n, { by = "weight" })` spreads nodes evenly over the leaves.
--   opts: leaves (default 4), latency (default "10ms"), jitter, loss, up, down (of hosts)
function topology.star(opts)
  known("star", opts, { "leaves", "latency", "jitter", "loss", "up", "down" })
  local g = graph()
  g:add_vertex("hub", { weight = 0 })
  local edge = {
    latency = opt(opts, "latency", "10ms"),
    jitter = opt(opts, "jitter", 0),
    loss = opt(opts, "loss", 0.0),
  }
  for i = 1, opt(opts, "leaves", 4) do
    g:add_vertex("leaf" .. i, access(opts, 1))
    g:add_edge("hub", "leaf" .. i, edge)
  end
  return g
end

-- Two sides, "left" and "right", `latency` apart, with `side_latency` between two nodes of
-- one side. Group links carry latency, jitter and loss but no rate: the bottleneck's
-- capacity is the hosts' own access links (up, down).
--   opts: latency (default "40ms"), side_latency (default "1ms"), jitter, loss, up, down
function topology.dumbbell(opts)
  known("dumbbell", opts, { "latency", "side_latency", "jitter", "loss", "up", "down" })
  local g = graph()
  g:add_vertex("left", access(opts, 1))
  g:add_vertex("right", access(opts, 1))
  g:add_edge("left", "right", {
    latency = opt(opts, "latency", "40ms"),
    jitter = opt(opts, "jitter", 0),
    loss = opt(opts, "loss", 0.0),
  })
  local side = { latency = opt(opts, "side_latency", "1ms") }
  g:add_edge("left", "left", side)
  g:add_edge("right", "right", side)
  return g
end

-- An ISP as a tree of three tiers: a "core", `regions` regional vertices ("region1", ...)
-- each `core_latency` from it, and `access` access vertices per region ("region1.access1",
-- ...) each `access_latency` from their region. Hosts go on access vertices (weight 1; core
-- and regions weigh 0).
--   opts: regions (default 3), access (default 2), core_latency (default "20ms"),
--         access_latency (default "5ms"), loss (of every edge), up, down (of hosts)
function topology.two_tier(opts)
  known("two_tier", opts,
    { "regions", "access", "core_latency", "access_latency", "loss", "up", "down" })
  local loss = opt(opts, "loss", 0.0)
  local g = graph()
  g:add_vertex("core", { weight = 0 })
  for r = 1, opt(opts, "regions", 3) do
    local region = "region" .. r
    g:add_vertex(region, { weight = 0 })
    g:add_edge("core", region, { latency = opt(opts, "core_latency", "20ms"), loss = loss })
    for a = 1, opt(opts, "access", 2) do
      local name = region .. ".access" .. a
      g:add_vertex(name, access(opts, 1))
      g:add_edge(region, name, { latency = opt(opts, "access_latency", "5ms"), loss = loss })
    end
  end
  return g
end

-- Six continents, a complete graph of one-way latencies between a hub city of each (see
-- stdlib/topology.rhai and the book's "Topologies" chapter for where the figures come from).
function topology.continents()
  local g = graph()
  for _, c in ipairs({ "africa", "asia", "europe", "north_america", "oceania", "south_america" }) do
    g:add_vertex(c, { weight = 1 })
  end
  -- One-way ms: { a, b, latency }.
  local pairs_ms = {
    { "africa", "africa", 20 }, { "asia", "asia", 30 }, { "europe", "europe", 10 },
    { "north_america", "north_america", 20 }, { "oceania", "oceania", 10 },
    { "south_america", "south_america", 20 },
    { "europe", "north_america", 45 }, { "europe", "asia", 80 }, { "europe", "africa", 80 },
    { "europe", "south_america", 100 }, { "europe", "oceania", 125 },
    { "north_america", "south_america", 60 }, { "north_america", "asia", 115 },
    { "north_america", "oceania", 105 }, { "north_america", "africa", 115 },
    { "asia", "oceania", 45 }, { "asia", "africa", 110 }, { "asia", "south_america", 165 },
    { "oceania", "africa", 150 }, { "oceania", "south_america", 155 },
    { "africa", "south_america", 170 },
  }
  for _, p in ipairs(pairs_ms) do
    g:add_edge(p[1], p[2], { latency = p[3] .. "ms" })
  end
  return g
end

return topology
