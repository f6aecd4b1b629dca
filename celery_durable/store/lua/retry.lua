-- A step attempt failed and will be retried: record it, expect the next attempt.
-- KEYS[1] history  KEYS[2] state  KEYS[3] steps
-- ARGV[1] seq  ARGV[2] step_retrying event (JSON)  ARGV[3] deadline (ms): if no attempt
-- has begun by then, the retry's message was lost and the step is sent again
-- ARGV[4] retry at (ms): no copy of the step begins before then
if redis.call('HGET', KEYS[2], 'status') ~= 'running' then return 0 end
if redis.call('HEXISTS', KEYS[3], 'done:' .. ARGV[1]) == 1 then return 0 end
-- The same call again (its reply was lost on the way back): already recorded.
if retry_at(redis.call('HGET', KEYS[3], inflight_field(ARGV[1]))) == tonumber(ARGV[4]) then
  return 1
end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[3], 'failed:' .. ARGV[1], 1)
redis.call('HSET', KEYS[3], inflight_field(ARGV[1]), retry_mark(ARGV[4], ARGV[3]))
return 1
