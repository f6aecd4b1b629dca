-- The messages of steps marked p:<ms> (being published) by a commit were sent.
-- KEYS[1] steps  ARGV[1] now (ms)  ARGV[2..] pairs: seq, the queue its message went to
for i = 2, #ARGV, 2 do
  local mark = redis.call('HGET', KEYS[1], inflight_field(ARGV[i]))
  if mark_kind(mark) == 'p' then
    redis.call('HSET', KEYS[1], inflight_field(ARGV[i]), queued_mark(ARGV[1], ARGV[i + 1]))
  end
end
return 1
