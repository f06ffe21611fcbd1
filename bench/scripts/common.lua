-- Headers every Mailslot request needs; the project is per run.
local M = {}
function M.setup(method, body)
  wrk.method = method
  wrk.body = body
  wrk.headers["Client-ID"] = "3b1f3e2c-6c2a-4d5e-9f00-000000000001"
  wrk.headers["X-Project-ID"] = os.getenv("BENCH_PROJECT") or "bench"
  wrk.headers["Content-Type"] = "application/json"
end
function M.message(i)
  -- A ~1 KB body: padding plus a counter.
  return '{"ttl": 3600, "body": {"n": ' .. i .. ', "pad": "' .. string.rep("x", 990) .. '"}}'
end
return M
