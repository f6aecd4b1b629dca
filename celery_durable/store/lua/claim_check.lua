-- Note that a recovery check for a run is on its way, unless one is already.
-- KEYS[1] checks (run id -> when sent, ms)  ARGV[1] run id  ARGV[2] now (ms)
-- ARGV[3] after how long a check not run yet counts as lost (ms)
-- Returns 1 if the caller should send one, 0 if one sent recently has not run yet.
local sent = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '')
if sent and sent > tonumber(ARGV[2]) - tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
