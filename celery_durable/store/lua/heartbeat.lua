-- A running step is alive: push its deadline (only while it is still in flight).
-- KEYS[1] steps  ARGV[1] seq  ARGV[2] deadline (ms)
if redis.call('HEXISTS', KEYS[1], 'inflight:' .. ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'inflight:' .. ARGV[1], ARGV[2])
  return 1
end
return 0
