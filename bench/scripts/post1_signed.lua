package.path = os.getenv("BENCH_SCRIPTS") .. "/?.lua;" .. package.path
local common = require("common")
common.setup("POST", '{"messages": [' .. common.message(1) .. ']}')
-- A signed request carries only the token: no Client-ID, no project.
wrk.headers["Client-ID"] = nil
wrk.headers["X-Project-ID"] = nil
wrk.headers["Authorization"] = "Signed " .. os.getenv("BENCH_CREDENTIAL")
wrk.path = "/v2/queues/" .. os.getenv("BENCH_QUEUE") .. "/messages"
