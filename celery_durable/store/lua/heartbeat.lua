-- A running step is alive: push its deadline on (only while it is marked running, and
-- never backwards: a retry's r:<ms> mark set meanwhile is left alone).
-- KEYS[1] steps  ARGV[1] seq  ARGV[2] deadline (ms)
-- ARGV[3] (optional) the mark it must still have: a claim made ahead of the run checks
-- that nobody found it lost and began it again meanwhile.
local mark = redis.call('HGET', KEYS[1], inflight_field(ARGV[1]))
if ARGV[3] and mark ~= ARGV[3] then return 0 end
local until_ms = running_until(mark)
if until_ms and until_ms < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], inflight_field(ARGV[1]), ARGV[2])
  return 1
end
return 0
