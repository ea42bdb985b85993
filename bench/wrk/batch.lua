-- The same JSON array of readings in every POST (BENCH_BODY names the file).
local file = io.open(os.getenv("BENCH_BODY"), "r")
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
wrk.path = "/v1/sensors/readings"
