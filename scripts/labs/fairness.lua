-- Lab 6 (book/src/lab-seed.md): the seed's "fairness of virtualization" experiment. A
-- CPU-bound job is started every second, each on its own node, each needing `alone` seconds
-- when it has a core to itself; the time each takes to complete is the metric `job_s`.
-- Without limits (`cpu=0`) the kernel shares the cores among whatever runs; with
-- `--set cpu=0.18` every node may use at most 0.18 of a core.
-- The twin of fairness.rhai: the same seed gives the same events.jsonl (str(x) writes x as
-- Rhai's `${x}` does: `..` would keep only 14 digits of a float).
--   sudo p2plab script scripts/labs/fairness.lua --out /dev/shm/fair-none
--   sudo p2plab script scripts/labs/fairness.lua --set cpu=0.18 --out /dev/shm/fair-cpu
local n_jobs = param("jobs", 10)
local alone = param("alone", 6.0)
local cpu = param("cpu", 0.0)

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
      log("job " .. (j - 1) .. " took " .. str(t) .. " s")
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
  log(n_jobs .. " jobs: " .. str(min) .. " to " .. str(max) .. " s, median " .. str(median)
      .. " s, spread " .. str(spread))
end
