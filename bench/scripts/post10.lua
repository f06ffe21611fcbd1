package.path = os.getenv("BENCH_SCRIPTS") .. "/?.lua;" .. package.path
local common = require("common")
local parts = {}
for i = 1, 10 do parts[i] = common.message(i) end
common.setup("POST", '{"messages": [' .. table.concat(parts, ", ") .. ']}')
wrk.path = "/v2/queues/" .. (os.getenv("BENCH_QUEUE") or "bench") .. "/messages"
