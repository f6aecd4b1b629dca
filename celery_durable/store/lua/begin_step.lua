-- A worker begins a step: count the attempt and mark it running until a deadline.
-- KEYS[1] history  KEYS[2] state  KEYS[3] steps
-- ARGV[1] seq  ARGV[2] deadline (ms)  ARGV[3] now (UNIX seconds, as a JSON number)
-- Returns {1, attempt, status} to run it, {0, 0, why} to skip it (run ended,
-- outcome already recorded, or no such step: a duplicate or stale message).
local status = redis.call('HGET', KEYS[2], 'status')
if status ~= 'running' then return {0, 0, status or 'missing'} end
if redis.call('HEXISTS', KEYS[3], 'done:' .. ARGV[1]) == 1 then return {0, 0, 'done'} end
if redis.call('HEXISTS', KEYS[3], 'inflight:' .. ARGV[1]) == 0 then return {0, 0, 'unknown'} end
local attempt = redis.call('HINCRBY', KEYS[3], 'attempt:' .. ARGV[1], 1)
redis.call('HSET', KEYS[3], 'inflight:' .. ARGV[1], ARGV[2])
redis.call('RPUSH', KEYS[1], '{"type": "step_started", "seq": ' .. ARGV[1] ..
  ', "attempt": ' .. attempt .. ', "at": ' .. ARGV[3] .. '}')
return {1, attempt, status}
