-- Lab 6 (book/src/lab-seed.md): the seed's "fairness of virtualization" experiment. A
-- CPU-bound job is started every second, each on its own node, each needing `alone` seconds
-- when it has a core to itself; the time each takes to complete is the metric `job_s`.
-- Without limits (`cpu=0`) the kernel shares the cores among whatever runs; with
-- `--set cpu=0.18` every node may use at most 0.18 of a core.
-- The twin of fairness.rhai: the same seed gives the same events.jsonl.
--   sudo p2plab script scripts/labs/fairness.lua --out /dev/shm/fair-none
--   sudo p2plab script scripts/labs/fairness.lua --set cpu=0.18 --out /dev/shm/fair-cpu
local n_jobs = param("jobs", 10)
local alone = param("alone", 6.0)
local cpu = param("cpu", 0.0)

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

local calibration = alloc_ip(1, { group = "calibration" })[1]
local nodes = alloc_ip(n_jobs, { group = "job" })
if cpu > 0.0 then shape(nodes, { cpu = cpu }) end

-- The job: a countdown in Python, `work` steps, calibrated first on an idle node (twice,
-- keeping the faster: a loaded machine makes a single measurement too slow).
local function job(work)
  return 'python3 -c "\nn = ' .. work .. '\nwhile n: n -= 1\n"'
end
local probe_work = 20000000
local took = 1e9
for _ = 1, 2 do
  local t = now()
  if spawn(calibration, job(probe_work), { shell = true }):wait() ~= 0 then
    error("calibration failed: is python3 installed?")
  end
  local d = now() - t
  if d < took then took = d end
end
-- A dry-run does not run the program (took is 0): any positive work will do.
-- (math.floor gives an integer, as Rhai's to_int does for a positive number.)
local work = probe_work
if took > 0.0 then work = math.floor(probe_work * alone / took) end
metric("calibration_s", took)
metric("work", work)

-- One job a second. A watcher looks every 0.1 s for jobs that ended (it runs while the
-- script sleeps or waits), so each time is off by at most that much. Jobs are numbered
-- from 0 in the logs, as in the Rhai version.
local jobs = {}
local started = {}
local seen = {}
local times = {}
local watcher = every(0.1, function()
  for j = 1, #jobs do
    if not seen[j] and not jobs[j].running then
      seen[j] = true
      if jobs[j].exit_code ~= 0 then error("job " .. (j - 1) .. " failed") end
      local t = now() - started[j]
      times[#times + 1] = t
      metric("job_s", t)
      log("job " .. (j - 1) .. " took " .. show(t) .. " s")
    end
  end
end)
for i = 1, n_jobs do
  jobs[#jobs + 1] = spawn(nodes[i], job(work), { shell = true })
  started[#started + 1] = now()
  seen[#seen + 1] = false
  sleep(1)
end
wait_until(function() return #times == n_jobs end, 100.0 * alone)
watcher:cancel()

if #times == n_jobs and times[1] > 0.0 then
  table.sort(times)
  local min = times[1]
  local max = times[n_jobs]
  local median = times[n_jobs // 2 + 1]
  -- The spread as the performance chapter gives it: (max - min) / median.
  local spread = (max - min) / median
  metric("min_s", min)
  metric("median_s", median)
  metric("max_s", max)
  metric("spread", spread)
  log(n_jobs .. " jobs: " .. show(min) .. " to " .. show(max) .. " s, median " .. show(median)
      .. " s, spread " .. show(spread))
end
