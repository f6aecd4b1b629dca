-- Request cancellation once.
-- KEYS[1] history  KEYS[2] state  ARGV[1] cancel_requested event (JSON)
-- Returns 0 if the run has ended (or does not exist), 1 otherwise.
if redis.call('HGET', KEYS[2], 'status') ~= 'running' then return 0 end
if redis.call('HSETNX', KEYS[2], 'cancel', 1) == 0 then return 1 end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'dirty', 1)
return 1
