local topology = require "topology"
local churn = require "churn"
local cond = require "conditions"
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
-- Every function of conditions, on nodes of their own (traces from scripts/traces/).
local eu = alloc_ip(3, { group = "eu" })
local us = alloc_ip(2, { group = "us" })
cond.ramp(eu, "down", "10mbit", "1mbit", 2, 10, 3)
cond.ramp(eu[1], "up", 2000000, "500kbit", 1, 9, 7)
cond.ramp("us", "latency", "10ms", 0.05, 0, "6s", 4)
cond.ramp(us, "jitter", 0, "3ms", 5.5, 5, 2)
cond.ramp(us[2], "loss", 0, 0.25, 3, 8, 5)
cond.square(eu[2], "loss", 0, 0.1, "4s", 1, 15)
cond.square(eu[3], "down", "2mbit", 8000000, 3, "500ms", "10s")
cond.on_off(eu[3], 3, "1500ms", 2, 20)
cond.on_off(us[1], 2, 2, 30, 31)
cond.replay_rate(us, "../../scripts/traces/square-10-2mbit.trace",
  { key = "up", window = "500ms", start = 4, offset = "5s", ["end"] = 30, min_rate = "3mbit" })
cond.replay_rate(eu, "../../scripts/traces/lte-like.down", {})
cond.replay_delay("eu", "us", "../../scripts/traces/delay-steps.trace",
  { start = 1, offset = "500ms", ["end"] = 12, jitter = "1ms", loss = 0.01 })
cond.replay_delay("us", "us", "../../scripts/traces/delay-steps.trace", { start = 40 })
local opts = { latency = "30ms" }
cond.step(eu, 7.5, opts)
opts.latency = "40ms"
cond.step(eu, "8s", opts)
local t = cond.step(us, 50, { up = "1mbit" })
t:cancel()
log(t)
sleep(61)
