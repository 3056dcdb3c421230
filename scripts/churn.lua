-- Churn on a small web of peers: 4 servers on fiber, 20 DSL peers that come and go.
-- Every peer fetches a page from a random server each second while it is online.
-- The twin of churn.rhai: the same seed gives the same events.jsonl.
--   p2plab script scripts/churn.lua --dry-run --set peers=50 --set minutes=20
local churn = require "churn"

local n_peers = param("peers", 20)
local minutes = param("minutes", 5)

local servers = alloc_ip(4, { group = "fiber" })
local peers = alloc_ip(n_peers, { group = "dsl" })
shape("fiber", { up = "100mbit", down = "100mbit", latency = "5ms" })
shape("dsl", { up = "1mbit", down = "8mbit", latency = "20ms", jitter = "2ms", loss = 0.001 })
link_groups("dsl", "fiber", { latency = "30ms" })

for _, s in ipairs(servers) do
  spawn(s, "python3 -m http.server 8000")
end

local server_ips = {}
for i, s in ipairs(servers) do server_ips[i] = s.ip end

local function fetch_loop(node, targets)
  local target = pick(targets)
  spawn(node, "sh -c 'while true; do curl -s -o /dev/null http://" .. target .. ":8000/; sleep 1; done'")
end

churn.run(peers, 10, minutes * 60, {
  session = { dist = "weibull", scale = 90, shape = 0.7 },
  downtime = { dist = "exp", mean = 30 },
  depart = "fail",
  on_join = function(node) fetch_loop(node, server_ips) end,
})

every("1m", function()
  local online = 0
  for _, p in ipairs(peers) do
    if not p.failed then online = online + 1 end
  end
  metric("online_peers", online)
end)
sleep(minutes * 60)
log("done after " .. minutes .. " minutes")
