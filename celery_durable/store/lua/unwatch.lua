-- Stop watching a run, unless its entry moved since the caller looked.
-- KEYS[1] watch  ARGV[1] run id  ARGV[2] the score the caller set (ms)
if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '-1') == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
