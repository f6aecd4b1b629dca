-- Start a run: write run_started unless the run already exists.
-- KEYS[1] history  KEYS[2] state
-- ARGV[1] run_started event (JSON)  ARGV[2] workflow name  ARGV[3] now (ms)
-- Returns {1} if created, else {0, workflow of the run that holds the id} (nothing
-- written): one script decides, so of concurrent starts under one id exactly one creates.
local existing = redis.call('HGET', KEYS[2], 'workflow')
if existing then return {0, existing} end
-- Dirty until a replay reads it: if the first orchestrate message is lost (the broker
-- was down, or the worker that took it died), the sweeper sees unseen events and
-- drives the run, instead of finding nothing in flight and letting it go.
redis.call('HSET', KEYS[2], 'status', 'running', 'workflow', ARGV[2], 'created_at', ARGV[3],
  'dirty', 1)
redis.call('RPUSH', KEYS[1], ARGV[1])
return {1}
