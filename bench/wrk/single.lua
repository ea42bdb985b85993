-- One sensor reading per POST, spread over 1000 devices.
local ts = os.getenv("BENCH_TS")
local key = "Bearer " .. os.getenv("BENCH_KEY")
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"deviceId":"bench-%d","ts":%s,"temperature":21.5,"humidity":40}', counter % 1000, ts)
  return wrk.format("POST", "/v1/sensors/readings", { ["Content-Type"] = "application/json", ["Authorization"] = key }, body)
end
