-- Append an event from outside (a webhook request, a hook payload) to a live run.
-- KEYS[1] history  KEYS[2] state  ARGV[1] event (JSON)
-- Returns 1 if appended, 0 if the run has ended (the caller answers 404).
if redis.call('HGET', KEYS[2], 'status') ~= 'running' then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'dirty', 1)
return 1
