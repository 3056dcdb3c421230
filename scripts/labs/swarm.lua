-- Lab 3 (book/src/lab-swarm.md): a BitTorrent swarm of real programs. One seed and N
-- leechers (ctorrent), all started at once behind an opentracker; each leecher's completion
-- time (from its start to its exit: `-e 0` leaves as soon as the file is complete) is a
-- metric, and so are its start-up (until its first data) and its transfer (from its first
-- data to its exit); then the medians and the maximum. Compare runs with another seed
-- upload or peer upload, and the simple bounds the script records.
-- The twin of swarm.rhai: the same seed gives the same events.jsonl (str(x) writes x as
-- Rhai's `${x}` does: `..` would keep only 14 digits of a float).
--   sudo p2plab script scripts/labs/swarm.lua --set seed_up=2mbit --out /dev/shm/swarm-2m
-- Needs Debian's opentracker and ctorrent (apt-get install opentracker ctorrent).
local n_peers = param("peers", 10)
local size_kb = param("size_kb", 4096)
local seed_up = param("seed_up", "512kbit")
local peer_up = param("peer_up", "1mbit")
local peer_down = param("peer_down", "8mbit")
local content = param("content_seed", 42)
local give_up = param("give_up", 600)       -- a leecher not done by then exits (124)

local tracker = alloc_ip(1, { group = "infra" })[1]
local seed = alloc_ip(1, { group = "seed" })[1]
local peers = alloc_ip(n_peers, { group = "peers" })
shape(seed, { up = seed_up, down = "100mbit", latency = "10ms" })
shape(peers, { up = peer_up, down = peer_down, latency = "20ms" })

-- The bounds of the chapter, in seconds: the seed must upload the file once; every leecher
-- must download it; the swarm must upload N copies with everything it has.
local bits = size_kb * 1024 * 8
local s_up = rate_bits(seed_up) + 0.0      -- rate_bits gives an integer; + 0.0 makes it a float
local p_up = rate_bits(peer_up) + 0.0
local p_down = rate_bits(peer_down) + 0.0
local bound_seed = bits / s_up
local bound_down = bits / p_down
local bound_swarm = n_peers * bits / (s_up + n_peers * p_up)
metric("bound_seed_s", bound_seed)
metric("bound_download_s", bound_down)
metric("bound_swarm_s", bound_swarm)
local bound = bound_seed
for _, b in ipairs({ bound_down, bound_swarm }) do
  if not (bound > b) then bound = b end
end
metric("bound_s", bound)

-- Every node makes the same file from one random seed, so the same torrent: the tracker
-- whitelists its info-hash, the seed keeps the file, the leechers delete their copy.
local make = [[set -e
python3 -c "import random; open('file.bin', 'wb').write(random.Random(]] .. content
  .. [[).randbytes(]] .. size_kb .. [[ * 1024))"
ctorrent -t -u http://]] .. tracker.ip .. [[:6969/announce -s swarm.torrent file.bin > /dev/null
python3 -c "import hashlib; d = open('swarm.torrent', 'rb').read(); i = d.index(b'4:info') + 6; print(hashlib.sha1(d[i:-1]).hexdigest())" > infohash
md5sum file.bin | cut -d' ' -f1 > file.md5]]
local making = spawn({ tracker, seed }, make, { shell = true })
for _, m in ipairs(spawn(peers, make .. "\nrm file.bin", { shell = true })) do
  making[#making + 1] = m
end
for _, m in ipairs(making) do
  if m:wait() ~= 0 then error("could not make the torrent on " .. m.node.ip) end
end

-- opentracker reads its whitelist as user nobody, after a chdir to /: an absolute path.
spawn(tracker, [[exec opentracker -p 6969 -P 6969 -w "$(pwd)/infohash"]], { shell = true })
sleep(1)
spawn(seed, "ctorrent -e 1 -s file.bin swarm.torrent")
sleep(2)

-- The flash crowd: every leecher at once. Every 0.25 s the script looks at each leecher:
-- its first data (64 KiB received: ctorrent's own start-up, announces and handshakes, is
-- over) and its end (it exits when the file is complete). So each time is off by at most
-- 0.25 s (the exit events in events.jsonl have the end to 10 ms).
local leechers = {}
local started = {}
for _, p in ipairs(peers) do
  leechers[#leechers + 1] = spawn(p, "timeout -k 10 " .. give_up
    .. " ctorrent -e 0 -s file.bin swarm.torrent")
  started[#started + 1] = now()
end
local open = #leechers
local first = {}        -- the time of each leecher's first data; nil until then
local seen = {}
for i = 1, #leechers do seen[i] = false end
local times = {}
local transfers = {}
while open > 0 and now() - started[1] < give_up + 20 do
  sleep(0.25)
  for i = 1, #leechers do
    if first[i] == nil and peers[i].rx_bytes > 65536 then
      first[i] = now()
      metric("first_data_s", now() - started[i])
    end
    if not seen[i] and not leechers[i].running then
      seen[i] = true
      open = open - 1
      if leechers[i].exit_code == 0 then
        local t = now() - started[i]
        times[#times + 1] = t
        metric("completion_s", t)
        if first[i] ~= nil then
          transfers[#transfers + 1] = now() - first[i]
          metric("transfer_s", now() - first[i])
        end
      end
    end
  end
end

-- Each leecher checks its copy against the checksum it made before deleting the file.
local intact = 0
for _, p in ipairs(peers) do
  if spawn(p, [[test "$(md5sum file.bin | cut -d' ' -f1)" = "$(cat file.md5)"]],
           { shell = true }):wait() == 0 then
    intact = intact + 1
  end
end
metric("peers_done", #times)
metric("peers_intact", intact)
if #times > 0 then
  table.sort(times)
  local median = times[#times // 2 + 1]
  local max = times[#times]
  metric("median_s", median)
  metric("max_s", max)
  if #transfers > 0 then
    table.sort(transfers)
    metric("median_transfer_s", transfers[#transfers // 2 + 1])
  end
  log(#times .. " of " .. n_peers .. " done: median " .. str(median) .. " s, max " .. str(max)
      .. " s; bounds: seed " .. str(bound_seed) .. " s, download " .. str(bound_down)
      .. " s, swarm " .. str(bound_swarm) .. " s")
end
