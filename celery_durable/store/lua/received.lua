-- A worker took a step's message off the queue (prefetched, maybe not started yet):
-- mark it held by that worker, so that if the worker dies the step is sent again
-- once its liveness key expires, not after the broker's visibility timeout. A mark
-- of another worker is taken over: the broker handed the message on.
-- KEYS[1] steps  ARGV[1] seq  ARGV[2] worker id  ARGV[3] now (ms)
local kind = mark_kind(redis.call('HGET', KEYS[1], inflight_field(ARGV[1])))
if kind == 'p' or kind == 'q' or kind == 'c' then
  redis.call('HSET', KEYS[1], inflight_field(ARGV[1]), taken_mark(ARGV[3], ARGV[2]))
  return 1
end
return 0
