-- Lab 2 (book: "Bufferbloat"): a home uplink of 2 Mbit/s with a drop-tail queue of each
-- size in turn; an iperf3 upload fills it while ping measures the round trip through it.
-- The queue adds up to size / rate of delay (128 KiB at 2 Mbit/s: 524 ms) to every packet.
-- The twin of bufferbloat.rhai: the same seed gives the same events.jsonl.
-- Needs iperf3 and ping (apt-get install iperf3 iputils-ping).
--   sudo p2plab script scripts/labs/bufferbloat.lua --set queues=8kb,64kb,256kb
local queues = param("queues", "8kb,32kb,128kb,512kb")
local up = param("up", "2mbit")
local seconds = param("seconds", 20)                -- length of each upload, s
local pings = param("pings", 20)                    -- pings under load, 4 a second
local cc = param("cc", "reno")                      -- TCP congestion control: reno, cubic

-- `x` as Rhai's `${x}` writes it. Lua's tostring keeps 14 digits of a float; Rhai writes the
-- fewest digits that read back as x (a tie rounded up), `.0` when x is whole, and e-notation
-- beyond 1e13 and below 1e-13 (Rhai's bounds, as f32).
local function show(x)
  if math.type(x) ~= "float" then return tostring(x) end
  if x ~= x then return "NaN" end
  if x == 0 then return "0.0" end
  local sign, a = "", x
  if x < 0 then sign, a = "-", -x end
  if a == math.huge then return sign .. "inf" end
  local function digits_of(n)        -- the digits of a in %e with n after the point
    local lead, rest, e = string.format("%." .. n .. "e", a):match("^(%d)%.?(%d*)e([-+]%d+)$")
    return lead .. rest, math.tointeger(tonumber(e))
  end
  local p = 1
  while p < 17 and tonumber(string.format("%." .. (p - 1) .. "e", a)) ~= a do p = p + 1 end
  local digits, e = digits_of(p - 1)
  -- Exactly halfway between two p-digit numbers, C rounds to the even one and Rust up.
  local half = digits_of(p)
  local exact = digits_of(98):gsub("0+$", "")
  if half == exact and half:sub(-1) == "5" then
    local last = tonumber(half:sub(p, p))
    if last % 2 == 0 then digits = half:sub(1, p - 1) .. (last + 1) end
  end
  if a > 9999999827968.0 or a < 9.9999998245167e-14 then
    local frac = digits:sub(2)
    return sign .. digits:sub(1, 1) .. (frac ~= "" and "." .. frac or "") .. "e" .. e
  elseif e < 0 then
    return sign .. "0." .. string.rep("0", -e - 1) .. digits
  elseif #digits <= e + 1 then
    return sign .. digits .. string.rep("0", e + 1 - #digits) .. ".0"
  else
    return sign .. digits:sub(1, e + 1) .. "." .. digits:sub(e + 2)
  end
end

-- Rhai's split: the pieces of `text` between the `sep`s, empty ones too.
local function split(text, sep)
  local pieces, from = {}, 1
  while true do
    local found = string.find(text, sep, from, true)
    if found == nil then break end
    pieces[#pieces + 1] = string.sub(text, from, found - 1)
    from = found + #sep
  end
  pieces[#pieces + 1] = string.sub(text, from)
  return pieces
end

-- Rhai's parse_float: always a float (tonumber("20") is the integer 20).
local function parse_float(text)
  local x = tonumber(text)
  if x == nil then error("Error parsing floating-point number '" .. text .. "'") end
  return x + 0.0
end

-- Rhai's round: half away from zero.
local function round(x)
  if x < 0 then return -round(-x) end
  local r = math.floor(x)
  if x - r >= 0.5 then r = r + 1 end
  return r
end

local function tenth(x) return round(x * 10.0) / 10.0 end

-- The average of ping's summary line `rtt min/avg/max/mdev = 40.1/41.3/43.0/0.8 ms`.
local function average_rtt(text)
  local found = string.find(text, "min/avg/max", 1, true)
  if found == nil then error("no reply at all: " .. text) end
  local numbers = split(split(string.sub(text, found), " = ")[2], "/")
  return parse_float(numbers[2])
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
  log("idle: " .. show(tenth(average_rtt(text))) .. " ms")
end

for _, queue in ipairs(split(queues, ",")) do
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
    if r.error ~= nil then error("iperf3 failed: " .. show(r.error)) end
    local rtt = average_rtt(text)
    local goodput = r["end"].sum_received.bits_per_second / 1e6   -- `end` is a word of Lua's
    -- What a full queue adds: its size at the uplink's rate.
    local full = 8.0 * size_bytes(queue) / rate_bits(up) * 1000.0
    metric("rtt_loaded_ms", rtt)
    metric("full_queue_ms", full)
    metric("goodput_mbit", goodput)
    log("queue " .. queue .. ": " .. show(tenth(rtt)) .. " ms under load (a full queue adds "
        .. show(tenth(full)) .. " ms), " .. show(tenth(goodput)) .. " Mbit/s")
  end
end
