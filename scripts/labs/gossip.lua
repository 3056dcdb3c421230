-- Lab 4 (book/src/lab-gossip.md): a rumour spreads by gossip among peers that come and go.
-- Each peer runs scripts/labs/gossip.py (python3, UDP port 7000); a bootstrap node lets peers
-- find each other; churn.run crashes peers from the start and brings them back with a fresh,
-- empty state.
-- Every `gap` seconds one rumour is injected at a random online peer, and every `probe`
-- seconds an observer asks every online peer whether it holds the latest rumour.
-- The twin of gossip.rhai: the same seed gives the same events.jsonl (str(x) writes x as
-- Rhai's `${x}` does: `..` would keep only 14 digits of a float).
--   sudo p2plab script scripts/labs/gossip.lua --set mode=push --set session=20
--   sudo p2plab script scripts/labs/gossip.lua --set peers=12 --set seconds=60   (reduced)
local churn = require "churn"

local n_peers = param("peers", 30)
local seconds = param("seconds", 90)        -- length of the run
local mode = param("mode", "pushpull")      -- "push" (rumour mongering) or "pushpull" (+ anti-entropy)
local fanout = param("fanout", 2)           -- peers a node pushes a fresh rumour to, each round
local rounds = param("rounds", 4)           -- rounds a node keeps pushing a rumour it received
local period = param("period", 0.5)         -- seconds per gossip round
local session = param("session", 30.0)      -- mean online session, seconds; 0: no churn
local downtime = param("downtime", 10.0)    -- mean offline time, seconds
local gap = param("gap", 20.0)              -- seconds between two rumours
local probe = param("probe", 1.0)           -- seconds between two counts
local warmup = param("warmup", 10.0)        -- seconds before the first rumour
-- The prototype, shipped next to this script (on every worker's machine too).
local py = param("py", script_dir() .. "/gossip.py")
if mode ~= "push" and mode ~= "pushpull" then error('mode: "' .. mode .. '": use push or pushpull') end

local prog = '"' .. py .. '"'
local infra = alloc_ip(2, { group = "infra" })
local bootstrap = infra[1]
local observer = infra[2]
local peers = alloc_ip(n_peers, { group = "peers" })
shape("peers", { up = "1mbit", down = "8mbit", latency = "20ms" })
shape("infra", { up = "100mbit", down = "100mbit", latency = "5ms" })

local node_cmd = "exec python3 -u " .. prog .. " node " .. bootstrap.ip .. " --mode " .. mode
  .. " --fanout " .. fanout .. " --rounds " .. rounds .. " --period " .. str(period)
spawn(bootstrap, node_cmd, { shell = true })
sleep(0.5)
-- Each peer starts the prototype when it joins: at once, and again after every crash (a
-- revived node has lost its state, as after a reboot).
local function join(node) return spawn(node, node_cmd, { shell = true }) end
if session > 0.0 then
  churn.run(peers, now() + 0.5, seconds, {
    session = { dist = "exp", mean = session },
    downtime = { dist = "exp", mean = downtime },
    on_join = join,
  })
else
  for _, p in ipairs(peers) do join(p) end
end

-- One rumour every `gap` seconds from `warmup` on, each at a random online peer.
local rumour = 0        -- the latest rumour's number; 0 before the first
local injected_at = 0.0
local reached_90 = false
local every_probe = every(probe, function()
  local online = {}
  for _, p in ipairs(peers) do
    if not p.failed then online[#online + 1] = p end
  end
  if now() >= warmup + rumour * gap and now() < seconds - 1.0 and #online > 0 then
    local origin = pick(online)
    rumour = rumour + 1
    injected_at = now()
    reached_90 = false
    spawn(observer, "exec python3 -u " .. prog .. " inject " .. origin.ip .. " r" .. rumour,
          { shell = true })
    log("rumour r" .. rumour .. " injected at " .. tostring(origin))
  end
  metric("online", #online)
  if rumour == 0 then return end
  local ips = ""
  for _, p in ipairs(online) do ips = ips .. " " .. p.ip end
  -- The count's exit status is the number of holders (a number, not an error, up to 125).
  local holders = spawn(observer, "exec python3 -u " .. prog .. " count r" .. rumour .. ips,
                        { shell = true }):wait()
  local fraction
  if holders > 125 or #online == 0 then fraction = 0.0 else fraction = holders / #online end
  metric("reached", fraction)
  if not reached_90 and fraction >= 0.9 then
    reached_90 = true
    metric("t90", now() - injected_at)
    log("r" .. rumour .. " reached 90 % of the online peers " .. str(now() - injected_at)
        .. " s after injection")
  end
end)
sleep(seconds)
every_probe:cancel()
