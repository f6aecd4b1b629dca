-- Append a request or payload from outside to a live webhook or hook of a run.
-- KEYS[1] history  KEYS[2] state  KEYS[3] steps
-- ARGV[1] event (JSON)  ARGV[2] seq of the webhook/hook  ARGV[3] its "kind:token" mark
-- Returns 1 if appended, 0 if the run has ended or that webhook/hook is not live
-- (disposed, or never committed): the caller answers 404 / HookNotFound.
if redis.call('HGET', KEYS[2], 'status') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[3], 'inbox:' .. ARGV[2]) ~= ARGV[3] then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'dirty', 1)
return 1
