-- Give the lease back, whatever arrived meanwhile (the caller could not replay).
-- KEYS[1] lease  ARGV[1] lease token
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
