-- Take (or keep) a run's lease and read its history from a position.
-- KEYS[1] history  KEYS[2] state  KEYS[3] lease
-- ARGV[1] lease token  ARGV[2] first index to read (the caller has seen the one before
-- it, which comes first, so the caller can check that it is still there)
-- ARGV[3] lease length (ms)
-- Returns false if another token holds the lease, {'', {}, ''} if there is no run,
-- else {status, events, created_at, length}; created_at tells a cached instance of an old
-- run with the same id from this one. Clears the dirty flag: the caller now sees
-- every event.
local state = redis.call('HMGET', KEYS[2], 'status', 'created_at')
local status = state[1]
if not status then return {'', {}, ''} end
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= ARGV[1] then return false end
if status ~= 'running' then return {status, {}, state[2]} end
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[3])
-- 'replaying' stays until a commit releases the lease: if the lease expires with it
-- still set, the replaying worker died and the sweeper must drive the run again.
redis.call('HSET', KEYS[2], 'replaying', 1)
redis.call('HDEL', KEYS[2], 'dirty')
-- The length lets the caller see a history shorter than its live instance (Redis lost
-- writes: a restart without AOF, a failover).
local from = math.max(tonumber(ARGV[2]) - 1, 0)
return {status, redis.call('LRANGE', KEYS[1], from, -1), state[2], redis.call('LLEN', KEYS[1])}
