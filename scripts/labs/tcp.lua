-- Lab 1 (book: "TCP throughput, RTT and loss"): one iperf3 transfer per (RTT, loss) pair
-- over a 100 Mbit/s path, each recorded as a metric next to the Mathis formula's prediction
--   throughput <= (MSS / RTT) * sqrt(3/2) / sqrt(p).
-- The twin of tcp.rhai: the same seed gives the same events.jsonl (str(x) writes x as
-- Rhai's `${x}` does: `..` would keep only 14 digits of a float).
-- Needs iperf3 (apt-get install iperf3).
--   sudo p2plab script scripts/labs/tcp.lua --set rtts=20,50,100 --set losses=0.001,0.01
local rtts = param("rtts", "20,50,100")            -- round-trip times, ms
local losses = param("losses", "0.001,0.005,0.02") -- packet loss rates, 0 to 1
local seconds = param("seconds", 20)               -- length of each transfer, s
local cc = param("cc", "reno")                     -- TCP congestion control: reno, cubic

-- x to one decimal, as Rhai's (x * 10.0).round() / 10.0 (x >= 0 here).
local function tenth(x) return math.floor(x * 10.0 + 0.5) / 10.0 end

local client = alloc_ip(1, { group = "client" })[1]
local server = alloc_ip(1, { group = "server" })[1]
spawn(server, "iperf3 -s")
sleep(1)

for rtt_text in rtts:gmatch("[^,]+") do          -- each piece between the commas
  for loss_text in losses:gmatch("[^,]+") do
    local rtt = tonumber(rtt_text) or error("rtts: not a number: " .. rtt_text)
    local loss = tonumber(loss_text) or error("losses: not a number: " .. loss_text)
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
      if r.error ~= nil then error("iperf3 failed: " .. str(r.error)) end
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
      log("rtt " .. rtt_text .. " ms, loss " .. loss_text .. ": " .. str(tenth(goodput)) .. " Mbit/s, "
          .. "Mathis " .. str(tenth(mathis)) .. ", "
          .. str(result.sum_sent.retransmits) .. " retransmissions, "
          .. "mean RTT " .. str(tenth(result.streams[1].sender.mean_rtt / 1000.0)) .. " ms")
    end
  end
end
