-- Hand timers that come due within the horizon to ETA messages, and re-arm armed
-- timers whose message was lost (not fired by due + grace).
-- KEYS[1] due timers (zset member -> due ms)  KEYS[2] armed timers (member -> fire-by ms)
-- ARGV[1] now (ms)  ARGV[2] horizon (ms)  ARGV[3] grace (ms)  ARGV[4] limit
-- Returns a flat list: member, due (ms), member, due, ...
local out = {}
local soon = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) + tonumber(ARGV[2]),
  'WITHSCORES', 'LIMIT', 0, ARGV[4])
for i = 1, #soon, 2 do
  redis.call('ZREM', KEYS[1], soon[i])
  redis.call('ZADD', KEYS[2], tonumber(soon[i + 1]) + tonumber(ARGV[3]), soon[i])
  table.insert(out, soon[i]); table.insert(out, soon[i + 1])
end
local lost = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[4])
for _, member in ipairs(lost) do
  redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + tonumber(ARGV[3]), member)
  table.insert(out, member); table.insert(out, ARGV[1])
end
return out
