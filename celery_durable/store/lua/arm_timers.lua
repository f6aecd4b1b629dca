-- Hand timers that come due within the horizon to ETA messages, and re-send armed
-- timers whose message seems lost (not fired by their fire-by time).
-- KEYS[1] due timers (member "<run>/<seq>/<due ms>" -> due ms)
-- KEYS[2] armed timers (member -> fire-by ms)
-- ARGV[1] now (ms)  ARGV[2] horizon (ms)  ARGV[3] grace (ms)  ARGV[4] re-send period (ms)
-- ARGV[5] limit
-- Returns the members to send an ETA message for.
local out = {}
-- Lost first, so that a timer armed in this very call is not sent twice.
local lost = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[5])
for _, member in ipairs(lost) do
  redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + tonumber(ARGV[4]), member)
  table.insert(out, member)
end
local soon = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) + tonumber(ARGV[2]),
  'WITHSCORES', 'LIMIT', 0, ARGV[5])
for i = 1, #soon, 2 do
  redis.call('ZREM', KEYS[1], soon[i])
  local from = math.max(tonumber(soon[i + 1]), tonumber(ARGV[1]))  -- overdue: from now
  redis.call('ZADD', KEYS[2], from + tonumber(ARGV[3]), soon[i])
  table.insert(out, soon[i])
end
return out
