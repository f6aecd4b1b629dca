-- A parent's child run exists now (its start command was carried out).
-- KEYS[1] the parent's steps  ARGV[1] seq  ARGV[2] now (ms)  ARGV[3] '1' if detached
-- A detached run is the command's whole outcome: done. An awaited child is marked
-- k:<ms> until its outcome is recorded, so the parent's sweeper checks on it.
if redis.call('HEXISTS', KEYS[1], 'done:' .. ARGV[1]) == 1 then return 0 end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'done:' .. ARGV[1], 1)
  redis.call('HDEL', KEYS[1], inflight_field(ARGV[1]))
else
  redis.call('HSET', KEYS[1], inflight_field(ARGV[1]), child_mark(ARGV[2]))
end
return 1
