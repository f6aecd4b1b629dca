-- Remove a token's mapping if this run still holds it.
-- KEYS[1] token key  ARGV[1] run id
if redis.call('HGET', KEYS[1], 'run') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
