-- Start a run: write run_started unless the run already exists.
-- KEYS[1] history  KEYS[2] state
-- ARGV[1] run_started event (JSON)  ARGV[2] workflow name  ARGV[3] now (ms)
-- Returns 1 if created, 0 if the run existed (nothing written).
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[2], 'status', 'running', 'workflow', ARGV[2], 'created_at', ARGV[3])
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1
