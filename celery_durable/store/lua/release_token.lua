-- Remove a token's mapping if it still maps to this run's webhook/hook at this seq
-- (the same token may since map to a newer hook of the same run).
-- KEYS[1] token key  ARGV[1] run id  ARGV[2] seq
if redis.call('HGET', KEYS[1], 'run') == ARGV[1] and
   redis.call('HGET', KEYS[1], 'seq') == ARGV[2] then
  return redis.call('DEL', KEYS[1])
end
return 0
