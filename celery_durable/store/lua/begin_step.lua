-- A worker begins a step: count the attempt and mark it running until a deadline.
-- KEYS[1] history  KEYS[2] state  KEYS[3] steps
-- ARGV[1] seq  ARGV[2] deadline (ms)  ARGV[3] now (UNIX seconds, as a JSON number)
-- ARGV[4] now (ms)
-- Returns {1, attempt, status} to run it, {0, 0, why} to skip it: the run ended, the
-- outcome is recorded, no such step (a stale message), or another copy of it is
-- running right now (a redelivered message): that one is not a lost attempt.
local status = redis.call('HGET', KEYS[2], 'status')
if status ~= 'running' then return {0, 0, status or 'missing'} end
if redis.call('HEXISTS', KEYS[3], 'done:' .. ARGV[1]) == 1 then return {0, 0, 'done'} end
local mark = redis.call('HGET', KEYS[3], 'inflight:' .. ARGV[1])
if not mark then return {0, 0, 'unknown'} end
-- Marks: p:<ms> being published, q:<ms> queued, c:<ms>:<worker> taken by a worker,
-- r:<retry at ms>:<deadline ms> waiting to retry, <ms> running until then (its
-- worker's heartbeat pushes it on).
local running_until = tonumber(mark)
if running_until and running_until > tonumber(ARGV[4]) then return {0, 0, 'running'} end
if string.sub(mark, 1, 2) == 'r:' then
  -- A stray copy must not cut a retry's wait short (1 s allows for clock skew).
  local retry_at = tonumber(string.match(mark, '^r:(%d+)'))
  if retry_at and retry_at - 1000 > tonumber(ARGV[4]) then return {0, 0, 'retry-pending'} end
end
local attempt = redis.call('HINCRBY', KEYS[3], 'attempt:' .. ARGV[1], 1)
redis.call('HSET', KEYS[3], 'inflight:' .. ARGV[1], ARGV[2])
redis.call('RPUSH', KEYS[1], '{"type": "step_started", "seq": ' .. ARGV[1] ..
  ', "attempt": ' .. attempt .. ', "at": ' .. ARGV[3] .. '}')
return {1, attempt, status}
