-- A BitTorrent swarm of real programs: opentracker, one ctorrent seed and N ctorrent leechers
-- on DSL links download a file; a probe asks the tracker every 2 s which peers it knows.
-- The twin of bittorrent.rhai: the same seed gives the same events.jsonl.
-- Needs Debian's opentracker and ctorrent (apt-get install opentracker ctorrent).
--   sudo p2plab script scripts/bittorrent.lua --set peers=10 --set size_kb=1024
-- It runs unchanged on several machines (--workers): no node reads another node's folder.
-- Every node makes the same file from the same random seed, and so the same torrent and
-- info-hash; leechers then delete their copy of the file and download it.
local n_peers = param("peers", 10)
local size_kb = param("size_kb", 1024)
local content = param("content_seed", 42)

local tracker = alloc_ip(1, { group = "infra", worker = 0 })[1]
local probe = alloc_ip(1, { group = "infra", worker = 0 })[1]
local seed = alloc_ip(1, { group = "seed" })[1]
local peers = alloc_ip(n_peers, { group = "dsl" })
shape(seed, { up = "10mbit", down = "10mbit", latency = "5ms" })
shape(peers, { up = "2mbit", down = "8mbit", latency = "20ms", jitter = "1ms" })

-- The file, its torrent, the info-hash (SHA-1 of the bencoded info dictionary, the last key
-- of the torrent's top-level dictionary: the tracker's whitelist) and the file's checksum.
local make = [[set -e
python3 -c "import random; open('file.bin', 'wb').write(random.Random(]] .. content
  .. [[).randbytes(]] .. size_kb .. [[ * 1024))"
ctorrent -t -u http://]] .. tracker.ip .. [[:6969/announce -s swarm.torrent file.bin > /dev/null
python3 -c "import hashlib; d = open('swarm.torrent', 'rb').read(); i = d.index(b'4:info') + 6; print(hashlib.sha1(d[i:-1]).hexdigest())" > infohash
grep -Eq '^[0-9a-f]{40}$' infohash
md5sum file.bin | cut -d' ' -f1 > file.md5]]
for _, n in ipairs({ tracker, probe, seed }) do
  if spawn(n, make, { shell = true }):wait() ~= 0 then
    error("could not make the torrent on " .. n.ip)
  end
end

-- opentracker changes to / and drops to user nobody before it reads its whitelist: give it
-- an absolute path (the node folders must be readable by nobody).
spawn(tracker, [[exec opentracker -p 6969 -P 6969 -w "$(pwd)/infohash"]], { shell = true })
sleep(1)
spawn(seed, "ctorrent -e 1 -s file.bin swarm.torrent")

-- Every 2 s the probe announces itself and records the peer addresses the tracker returns.
local ask = [[python3 -c "
import urllib.request, urllib.parse, socket
# No proxy from the environment: the tracker is a node of this lab.
get = urllib.request.build_opener(urllib.request.ProxyHandler({})).open
h = bytes.fromhex(open('infohash').read().strip())
q = urllib.parse.urlencode({'info_hash': h, 'peer_id': '-PB0001-000000000000', 'port': 9,
    'uploaded': 0, 'downloaded': 0, 'left': 1, 'numwant': 200, 'compact': 1})
d = get('http://]] .. tracker.ip .. [[:6969/announce?' + q, timeout=5).read()
i = d.index(b'5:peers') + 7; j = d.index(b':', i); n = int(d[i:j]); p = d[j + 1:j + 1 + n]
print(' '.join(socket.inet_ntoa(p[k:k + 4]) for k in range(0, len(p), 6)))
" >> tracker-peers.txt]]
local asking = every("2s", function() spawn(probe, ask, { shell = true }) end)

local leechers = {}
for _, p in ipairs(peers) do
  -- A leecher that is still not done after 5 minutes gives up (exit 124), so a broken
  -- swarm ends instead of hanging.
  leechers[#leechers + 1] = spawn(p, make .. [[

rm file.bin
exec timeout 300 ctorrent -e 0 -s file.bin swarm.torrent]], { shell = true })
  sleep(0.2)
end
local done = 0
for _, l in ipairs(leechers) do
  if l:wait() == 0 then done = done + 1 end
end
metric("peers_done", done)
asking:cancel()

-- Each peer checks its copy against the checksum of the file it made before.
local intact = 0
for _, p in ipairs(peers) do
  if spawn(p, [[test "$(md5sum file.bin | cut -d' ' -f1)" = "$(cat file.md5)"]],
           { shell = true }):wait() == 0 then
    intact = intact + 1
  end
end
metric("peers_intact", intact)
log(done .. " of " .. n_peers .. " peers finished, " .. intact .. " with an intact file")
