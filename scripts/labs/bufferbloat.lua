-- Lab 2 (book: "Bufferbloat"): a home uplink of 2 Mbit/s with a drop-tail queue of each
-- size in turn; an iperf3 upload fills it while ping measures the round trip through it.
-- The queue adds up to size / rate of delay (128 KiB at 2 Mbit/s: 524 ms) to every packet.
-- The twin of bufferbloat.rhai: the same seed gives the same events.jsonl (str(x) writes x as
-- Rhai's `${x}` does: `..` would keep only 14 digits of a float).
-- Needs iperf3 and ping (apt-get install iperf3 iputils-ping).
--   sudo p2plab script scripts/labs/bufferbloat.lua --set queues=8kb,64kb,256kb
local queues = param("queues", "8kb,32kb,128kb,512kb")
local up = param("up", "2mbit")
local seconds = param("seconds", 20)                -- length of each upload, s
local pings = param("pings", 20)                    -- pings under load, 4 a second
local cc = param("cc", "reno")                      -- TCP congestion control: reno, cubic

-- x to one decimal, as Rhai's (x * 10.0).round() / 10.0 (x >= 0 here).
local function tenth(x) return math.floor(x * 10.0 + 0.5) / 10.0 end

-- The average of ping's summary line `rtt min/avg/max/mdev = 40.1/41.3/43.0/0.8 ms`.
local function average_rtt(text)
  local average = text:match("min/avg/max%S* = [%d.]+/([%d.]+)")
  if average == nil then error("no reply at all: " .. text) end
  return tonumber(average)
end

local home = alloc_ip(1, { group = "home" })[1]
local server = alloc_ip(1, { group = "server" })[1]
shape(home, { up = up, down = "20mbit", latency = "10ms" })
shape(server, { up = "100mbit", down = "100mbit", latency = "10ms" })
spawn(server, "iperf3 -s")
sleep(1)

local function ping(name)
  return spawn(home, "ping -n -c " .. pings .. " -i 0.25 -W 10 -I " .. home.ip .. " " .. server.ip,
               { stdout = name })
end
local idle = ping("ping-idle.txt")
idle:wait()
local text = idle:output()
if text ~= nil then                                 -- nil in a dry-run: nothing ran
  metric("rtt_idle_ms", average_rtt(text))
  log("idle: " .. str(tenth(average_rtt(text))) .. " ms")
end

for queue in queues:gmatch("[^,]+") do          -- each piece between the commas
  shape(home, { queue = queue })
  local upload = spawn(home, "iperf3 -c " .. server.ip .. " -t " .. seconds .. " -C " .. cc .. " -J",
                       { stdout = "iperf-" .. queue .. ".json" })
  sleep(seconds / 4.0)                              -- let the queue fill first
  local probe = ping("ping-" .. queue .. ".txt")
  probe:wait()
  upload:wait()
  local text = probe:output()
  local r = read_json(home, "iperf-" .. queue .. ".json")
  if text ~= nil and r ~= nil then
    if r.error ~= nil then error("iperf3 failed: " .. str(r.error)) end
    local rtt = average_rtt(text)
    local goodput = r["end"].sum_received.bits_per_second / 1e6   -- `end` is a word of Lua's
    -- What a full queue adds: its size at the uplink's rate.
    local full = 8.0 * size_bytes(queue) / rate_bits(up) * 1000.0
    metric("rtt_loaded_ms", rtt)
    metric("full_queue_ms", full)
    metric("goodput_mbit", goodput)
    log("queue " .. queue .. ": " .. str(tenth(rtt)) .. " ms under load (a full queue adds "
        .. str(tenth(full)) .. " ms), " .. str(tenth(goodput)) .. " Mbit/s")
  end
end
