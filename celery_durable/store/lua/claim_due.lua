-- Claim runs whose watch time passed, pushing each to the next check time, so
-- that several sweepers running at once each send a run's check once.
-- KEYS[1] watch  ARGV[1] now (ms)  ARGV[2] next check (ms)  ARGV[3] limit
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, run in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], run) end
return due
