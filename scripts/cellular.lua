-- Phones on a trace-driven cellular link download from a server on fiber. Every phone plays
-- the same LTE-like traces (traces/lte-like.down and .up, Mahimahi's format) from its own
-- random offset (drawn from --seed), so their rates rise and fall at different times; the
-- last phone also drives through a tunnel (5 s without signal, conditions.on_off).
-- Each phone's downlink goodput is recorded as a metric, next to the trace's mean rate.
-- The twin of cellular.rhai: the same seed gives the same events.jsonl.
--   p2plab script scripts/cellular.lua --dry-run --set phones=8 --set seconds=60
-- Real mode needs iperf3 (`apt-get install iperf3`).
local cond = require "conditions"

local n_phones = param("phones", 4)
local seconds = param("seconds", 30)

local server = alloc_ip(1, { group = "fiber" })[1]
local phones = alloc_ip(n_phones, { group = "lte" })
shape("fiber", { up = "1gbit", down = "1gbit", latency = "2ms" })
-- Cellular networks buffer deeply: 1 MB is about half a second at the trace's mean rate.
shape("lte", {
  down_trace = "traces/lte-like.down", up_trace = "traces/lte-like.up", latency = "20ms",
  queue = "1mb",
})
link_groups("lte", "fiber", { latency = "15ms" })

-- The tunnel: 10 s of signal, 5 s without, then signal again.
cond.on_off(phones[n_phones], 10, 5, 0, 15)

-- One iperf3 server per phone (a server takes one test at a time); -R: the server sends.
local servers = {}
for i = 0, n_phones - 1 do
  servers[#servers + 1] = spawn(server, "iperf3 -s -1 -p " .. (5201 + i))
end
sleep(0.5)
local clients = {}
for i = 0, n_phones - 1 do
  clients[#clients + 1] = spawn(phones[i + 1], "iperf3 -c " .. server.ip .. " -p " .. (5201 + i)
    .. " -R -t " .. seconds)
end
sleep(seconds + 1)
-- Each server ends once its test is over.
for _, p in ipairs(clients) do p:wait() end
for _, p in ipairs(servers) do p:wait() end

metric("trace_mean_mbit", trace_rates("traces/lte-like.down").mean / 1e6)
for i = 0, n_phones - 1 do
  -- Bits the phone received over the test (dry-run: 0).
  metric("phone" .. i .. "_mbit", phones[i + 1].rx_bytes * 8.0 / seconds / 1e6)
end
