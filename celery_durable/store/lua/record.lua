-- Record a command's outcome once, and try to take the run's lease.
-- KEYS[1] history  KEYS[2] state  KEYS[3] steps  KEYS[4] lease
-- ARGV[1] seq  ARGV[2] outcome event (JSON)  ARGV[3] lease token ('' to not take it)
-- ARGV[4] lease length (ms)  ARGV[5] for a timer: its due time (ms) as committed, else ''
-- ARGV[6] '' or the first history index to read when the lease is taken
-- Returns {recorded, leased}: {0, 0} when the run ended, an outcome is already
-- recorded (the first one wins), or a timer does not match a committed one; the
-- dirty flag tells a lease holder to read on. With ARGV[6] and the lease taken it
-- returns {1, 1, created_at, events, length}: what load.lua would (events from the one
-- before ARGV[6]), saving its round trip.
local state = redis.call('HMGET', KEYS[2], 'status', 'created_at')
if state[1] ~= 'running' then return {0, 0} end
if ARGV[5] ~= '' and redis.call('HGET', KEYS[3], 'timer:' .. ARGV[1]) ~= ARGV[5] then
  return {0, 0}
end
if redis.call('HSETNX', KEYS[3], 'done:' .. ARGV[1], 1) == 0 then return {0, 0} end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[3], inflight_field(ARGV[1]))
local leased = ARGV[3] ~= '' and redis.call('SET', KEYS[4], ARGV[3], 'NX', 'PX', ARGV[4])
if leased and ARGV[6] ~= '' then
  -- This caller reads the tail now, so nothing is left for a dirty flag to announce.
  redis.call('HSET', KEYS[2], 'replaying', 1)
  redis.call('HDEL', KEYS[2], 'dirty')
  local from = math.max(tonumber(ARGV[6]) - 1, 0)
  local events = redis.call('LRANGE', KEYS[1], from, -1)
  -- The list was just appended to, so it is empty from here only when it is shorter
  -- than the caller thinks (Redis lost writes): then ask for its length.
  local length = #events > 0 and from + #events or redis.call('LLEN', KEYS[1])
  return {1, 1, state[2], events, length}
end
redis.call('HSET', KEYS[2], 'dirty', 1)
if leased then return {1, 1} end
return {1, 0}
