-- Is anything of this run in motion: a lease held, unseen events, an unfinished
-- replay, a step in flight?
-- KEYS[1] state  KEYS[2] lease  KEYS[3] steps
-- Returns 1 if so (keep watching the run), 0 if it only waits on the outside world.
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
if redis.call('HEXISTS', KEYS[1], 'dirty') == 1 then return 1 end
if redis.call('HEXISTS', KEYS[1], 'replaying') == 1 then return 1 end  -- its replayer died
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
for _, field in ipairs(redis.call('HKEYS', KEYS[3])) do
  if string.sub(field, 1, 9) == inflight_field('') then return 1 end
end
return 0
