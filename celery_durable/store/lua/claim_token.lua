-- Map a webhook/hook token to (run, seq), unless another run holds it.
-- KEYS[1] token key  ARGV[1] run id  ARGV[2] seq  ARGV[3] kind  ARGV[4] token
-- ARGV[5] method ('' for any)  ARGV[6] respond_with (JSON)
-- ARGV[7] '' or the id of an ended run whose stale claim may be taken over  ARGV[8] now (ms)
-- Returns '' when this run holds it now, else the id of the run that holds it.
local holder = redis.call('HGET', KEYS[1], 'run')
if holder and holder ~= ARGV[1] and holder ~= ARGV[7] then return holder end
redis.call('HSET', KEYS[1], 'run', ARGV[1], 'seq', ARGV[2], 'kind', ARGV[3], 'token', ARGV[4],
  'method', ARGV[5], 'respond_with', ARGV[6], 'claimed_at', ARGV[8])
return ''
