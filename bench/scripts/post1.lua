package.path = os.getenv("BENCH_SCRIPTS") .. "/?.lua;" .. package.path
local common = require("common")
common.setup("POST", '{"messages": [' .. common.message(1) .. ']}')
wrk.path = "/v2/queues/" .. (os.getenv("BENCH_QUEUE") or "bench") .. "/messages"
