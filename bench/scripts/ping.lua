package.path = os.getenv("BENCH_SCRIPTS") .. "/?.lua;" .. package.path
local common = require("common")
common.setup("GET", nil)
wrk.path = "/v2/ping"
