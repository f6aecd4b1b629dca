-- The messages of steps marked p:<ms> (being published) by a commit were sent.
-- KEYS[1] steps  ARGV[1] now (ms)  ARGV[2..] seqs
for i = 2, #ARGV do
  local mark = redis.call('HGET', KEYS[1], 'inflight:' .. ARGV[i])
  if mark and string.sub(mark, 1, 2) == 'p:' then
    redis.call('HSET', KEYS[1], 'inflight:' .. ARGV[i], 'q:' .. ARGV[1])
  end
end
return 1
