-- Lab 1 (book: "TCP throughput, RTT and loss"): one iperf3 transfer per (RTT, loss) pair
-- over a 100 Mbit/s path, each recorded as a metric next to the Mathis formula's prediction
--   throughput <= (MSS / RTT) * sqrt(3/2) / sqrt(p).
-- The twin of tcp.rhai: the same seed gives the same events.jsonl.
-- Needs iperf3 (apt-get install iperf3).
--   sudo p2plab script scripts/labs/tcp.lua --set rtts=20,50,100 --set losses=0.001,0.01
local rtts = param("rtts", "20,50,100")            -- round-trip times, ms
local losses = param("losses", "0.001,0.005,0.02") -- packet loss rates, 0 to 1
local seconds = param("seconds", 20)               -- length of each transfer, s
local cc = param("cc", "reno")                     -- TCP congestion control: reno, cubic

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

local client = alloc_ip(1, { group = "client" })[1]
local server = alloc_ip(1, { group = "server" })[1]
spawn(server, "iperf3 -s")
sleep(1)

for _, rtt_text in ipairs(split(rtts, ",")) do
  for _, loss_text in ipairs(split(losses, ",")) do
    local rtt = parse_float(rtt_text)
    local loss = parse_float(loss_text)
    -- Both access links carry a quarter of the RTT each way; the loss is the server's,
    -- met once by every data packet (and by every ACK, which matters little).
    shape(client, { up = "100mbit", down = "100mbit", latency = rtt / 4000.0 })
    shape(server, { up = "100mbit", down = "100mbit", latency = rtt / 4000.0, loss = loss })
    local name = "iperf-" .. rtt_text .. "ms-" .. loss_text .. ".json"
    local run = spawn(client, "iperf3 -c " .. server.ip .. " -t " .. seconds .. " -C " .. cc .. " -J",
                      { stdout = name })
    run:wait()
    local r = read_json(client, name)
    if r ~= nil then                                  -- nil in a dry-run: nothing ran
      if r.error ~= nil then error("iperf3 failed: " .. show(r.error)) end
      local result = r["end"]                         -- `end` is a word of Lua's
      local goodput = result.sum_received.bits_per_second / 1e6
      local mss = r.start.tcp_mss_default
      local mathis
      if loss > 0.0 then
        mathis = mss * 8.0 / (rtt / 1000.0) * math.sqrt(1.5) / math.sqrt(loss) / 1e6
      else
        mathis = 100.0                                -- no loss: the link's rate bounds it
      end
      metric("goodput_mbit", goodput)
      metric("mathis_mbit", mathis)
      metric("measured_over_mathis", goodput / mathis)
      log("rtt " .. rtt_text .. " ms, loss " .. loss_text .. ": " .. show(tenth(goodput)) .. " Mbit/s, "
          .. "Mathis " .. show(tenth(mathis)) .. ", "
          .. show(result.sum_sent.retransmits) .. " retransmissions, "
          .. "mean RTT " .. show(tenth(result.streams[1].sender.mean_rtt / 1000.0)) .. " ms")
    end
  end
end
