-- A running step is alive: push its deadline on (only while it is marked running, and
-- never backwards: a retry's r:<ms> mark set meanwhile is left alone).
-- KEYS[1] steps  ARGV[1] seq  ARGV[2] deadline (ms)
local running_until = tonumber(redis.call('HGET', KEYS[1], 'inflight:' .. ARGV[1]) or '')
if running_until and running_until < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'inflight:' .. ARGV[1], ARGV[2])
  return 1
end
return 0
