-- Extend the lease during a long replay.
-- KEYS[1] lease  ARGV[1] lease token  ARGV[2] lease length (ms)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
