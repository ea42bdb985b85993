-- One sensor reading per POST, each connection pausing BENCH_DELAY_MS between requests (a steady rate).
local ts = os.getenv("BENCH_TS")
local key = "Bearer " .. os.getenv("BENCH_KEY")
local pause = tonumber(os.getenv("BENCH_DELAY_MS"))
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"deviceId":"soak-%d","ts":%s,"temperature":21.5,"humidity":40}', counter % 1000, ts)
  return wrk.format("POST", "/v1/sensors/readings", { ["Content-Type"] = "application/json", ["Authorization"] = key }, body)
end
delay = function()
  return pause
end
