-- One sensor reading per POST, spread over 1000 devices. With BENCH_DELAY_MS each connection pauses that long
-- between requests (a steady rate for the soak); without it, as fast as the gateway answers.
local ts = os.getenv("BENCH_TS")
local key = "Bearer " .. os.getenv("BENCH_KEY")
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"deviceId":"bench-%d","ts":%s,"temperature":21.5,"humidity":40}', counter % 1000, ts)
  return wrk.format("POST", "/v1/sensors/readings", { ["Content-Type"] = "application/json", ["Authorization"] = key }, body)
end
if pause > 0 then
  delay = function()
    return pause
  end
end
