local topology = require "topology"
local churn = require "churn"
local star = topology.star({ leaves = 3, latency = "15ms", up = "2mbit" })
local a = star:place(6, { by = "weight" })
local world = topology.continents()
local b = world:place(12, { by = "weight" })
local isp = topology.two_tier({ regions = 2, access = 2 })
local c = isp:place(4)
local d = topology.dumbbell({ latency = "30ms" }):place(4)
log(world:path("europe", "asia"))
churn.arrivals(b, 0.5, 1, 60, { session = { dist = "pareto", scale = 10, shape = 1.5 }, depart = "leave" })
churn.run(a, 0, 60, { session = 20, downtime = { dist = "exp", mean = 5 }, online_at_start = false })
sleep(61)
