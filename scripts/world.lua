-- Peers around the world on a GML topology (scripts/data/world.gml: eight cities, made for
-- this example). Peers are placed by each city's `users` weight, take their city's host
-- bandwidth, and meet each other over the shortest paths between cities. A server in
-- frankfurt serves a file; every peer fetches it once a few seconds after it starts, and the
-- script records the path latency from each city to frankfurt.
-- The twin of world.rhai: the same seed gives the same events.jsonl.
--   p2plab script scripts/world.lua --dry-run --set peers=40
local topology = require "topology"

local n_peers = param("peers", 16)

local world = topology.from_gml("data/world.gml")
for _, city in ipairs(world:vertices()) do
  metric("latency_to_frankfurt." .. city, world:path(city, "frankfurt").latency)
end

local server = world:place(1, { vertex = "frankfurt" })
local peers = world:place(n_peers, { by = "weight", key = "users" })

spawn(server[1], "sh -c 'head -c 1000000 /dev/zero > file.bin; python3 -m http.server 8000'")
sleep("2s")
local fetches = {}
for _, p in ipairs(peers) do
  fetches[#fetches + 1] = spawn(p, "curl -s -o /dev/null -w '%{time_total}\\n' http://"
    .. server[1].ip .. ":8000/file.bin")
end
for _, f in ipairs(fetches) do f:wait() end
log(#peers .. " peers fetched the file")
