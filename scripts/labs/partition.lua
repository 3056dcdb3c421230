-- Lab 5 (book/src/lab-partition.md): a register replicated on three nodes, two in the east and
-- one in the west, and a network partition between east and west that heals. Each replica runs
-- scripts/labs/replica.py (python3, UDP port 7100). Every `tick` seconds a client in the east
-- writes the next integer to key x, a client in the west reads x from its replica, and an
-- observer (outside both sides) asks the three replicas how far apart they are.
-- The twin of partition.rhai: the same seed gives the same events.jsonl (str(x) writes x as
-- Rhai's `${x}` does: `..` would keep only 14 digits of a float).
--   sudo p2plab script scripts/labs/partition.lua --set mode=quorum --set sync=4
--   sudo p2plab script scripts/labs/partition.lua --set split=10 --set after=8   (reduced)
local mode = param("mode", "lww")        -- "lww" (always available) or "quorum" (majority of 3)
local every_sync = param("sync", 1.0)   -- seconds between two anti-entropy rounds
local tick = param("tick", 1.0)          -- seconds between two writes (and reads, and looks)
local before = param("before", 10.0)     -- seconds before the partition
local split = param("split", 20.0)       -- seconds the partition lasts
local after = param("after", 15.0)       -- seconds after the heal
local py = param("py", script_dir() .. "/replica.py")
if mode ~= "lww" and mode ~= "quorum" then error('mode: "' .. mode .. '": use lww or quorum') end
-- The service, shipped next to this script (on every worker's machine too).
local prog = '"' .. py .. '"'

local east = alloc_ip(3, { group = "east" })     -- replicas A and B, and the east client
local west = alloc_ip(2, { group = "west" })     -- replica C, and the west client
local observer = alloc_ip(1, { group = "lab" })[1]
shape("east", { up = "10mbit", down = "10mbit", latency = "5ms" })
shape("west", { up = "10mbit", down = "10mbit", latency = "5ms" })
link_groups("east", "west", { latency = "30ms" })   -- RTT east-west: 2 × (5 + 5 + 30) = 80 ms

local replicas = { east[1], east[2], west[1] }
local all = replicas[1].ip .. "," .. replicas[2].ip .. "," .. replicas[3].ip
local client_east = east[3]
local client_west = west[2]
for _, r in ipairs(replicas) do
  spawn(r, "exec python3 -u " .. prog .. " serve --peers " .. all .. " --mode " .. mode
    .. " --sync " .. str(every_sync), { shell = true })
end
sleep(1)

local heal_at = before + split
local stop = heal_at + after   -- (`end` in the Rhai version: a word of Lua's)
local written = 0        -- the last value the east client wrote successfully
local converging = nil   -- the observer's `converge` process, from the heal on
local waiting = false    -- whether its result is still to be recorded
local target = 0         -- the value it waits for: the last one written before the heal
at(before, function()
  link_groups("east", "west", { latency = "30ms", loss = 1.0 })   -- nothing gets through
  log("partition: east and west cannot talk")
end)
at(heal_at, function()
  link_groups("east", "west", { latency = "30ms" })              -- loss back to 0
  target = written
  log("heal: the last value written before it is " .. target)
  converging = spawn(observer, "exec python3 -u " .. prog .. " converge x " .. target .. " " .. all,
                     { shell = true })
  waiting = true
end)

local k = 0
while now() < stop do
  local next_tick = now() + tick
  k = k + 1
  -- The three at once; each one's exit status is its answer.
  local put = spawn(client_east, "exec python3 -u " .. prog .. " put " .. replicas[1].ip .. " x " .. k,
                    { shell = true })
  local get = spawn(client_west, "exec python3 -u " .. prog .. " get " .. replicas[3].ip .. " x",
                    { shell = true })
  local look = spawn(observer, "exec python3 -u " .. prog .. " behind x " .. all, { shell = true })
  local put_ok = put:wait() == 0
  if put_ok then written = k end
  metric("east_write_ok", put_ok and 1 or 0)
  metric("west_read_ok", get:wait() == 0 and 1 or 0)
  local behind = look:wait()       -- how many writes the most out-of-date replica misses
  metric("behind", behind <= 125 and behind or 0)
  if waiting and not converging.running then
    -- nil when a signal ended it: Rhai's `() <= 120` is false.
    local code = converging.exit_code
    if code ~= nil and code <= 120 then
      metric("converge_s", code / 10.0)
      log("the replicas hold value " .. target .. " or newer " .. str(code / 10.0)
          .. " s after the heal")
    else
      log("the replicas did not converge within 12 s of the heal")
    end
    waiting = false
  end
  if next_tick > now() then sleep(next_tick - now()) end
end
