-- A worker begins a step: count the attempt and mark it running until a deadline.
-- KEYS[1] history  KEYS[2] state  KEYS[3] steps
-- ARGV[1] seq  ARGV[2] deadline (ms)  ARGV[3] now (UNIX seconds, as a JSON number)
-- ARGV[4] now (ms)
-- Returns {1, attempt, status, failures} to run it (failures: earlier attempts that
-- recorded a failure; the others were lost with their worker), {0, 0, why, 0} to skip
-- it: the run ended, the outcome is recorded, no such step (a stale message), or
-- another copy of it is running right now (a redelivered message, not a lost attempt).
local status = redis.call('HGET', KEYS[2], 'status')
if status ~= 'running' then return {0, 0, status or 'missing', 0} end
local field = inflight_field(ARGV[1])
-- One read of the step's fields: its outcome, its mark, its recorded failures.
local step = redis.call('HMGET', KEYS[3], 'done:' .. ARGV[1], field, 'failed:' .. ARGV[1])
if step[1] then return {0, 0, 'done', 0} end
local mark = step[2]
if not mark then return {0, 0, 'unknown', 0} end
local until_ms = running_until(mark)
if until_ms and until_ms > tonumber(ARGV[4]) then return {0, 0, 'running', 0} end
-- A stray copy must not cut a retry's wait short (1 s allows for clock skew).
local retry_ms = retry_at(mark)
if retry_ms and retry_ms - 1000 > tonumber(ARGV[4]) then return {0, 0, 'retry-pending', 0} end
local attempt = redis.call('HINCRBY', KEYS[3], 'attempt:' .. ARGV[1], 1)
redis.call('HSET', KEYS[3], field, ARGV[2])
redis.call('RPUSH', KEYS[1], '{"type": "step_started", "seq": ' .. ARGV[1] ..
  ', "attempt": ' .. attempt .. ', "at": ' .. ARGV[3] .. '}')
return {1, attempt, status, tonumber(step[3] or '0')}
