-- A failed run goes on: running again, under the code deployed now.
-- KEYS[1] history  KEYS[2] state  KEYS[3] steps  KEYS[4] done
-- ARGV[1] run_redriven event (JSON)  ARGV[2] a publishing mark's time that is already
-- past a lease (ms): the steps to run again count as lost at once and are sent
-- ARGV[3..] seqs of the steps whose failure ended the run (fresh attempts for each)
-- Returns 0 (nothing written) unless the run is failed, else 1.
if redis.call('HGET', KEYS[2], 'status') ~= 'failed' then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'status', 'running', 'dirty', 1)
redis.call('HDEL', KEYS[2], 'ended_at', 'outcome', 'replaying', 'cancel')
redis.call('DEL', KEYS[4])
for i = 1, 3 do redis.call('PERSIST', KEYS[i]) end
for i = 3, #ARGV do
  local seq = ARGV[i]
  redis.call('HDEL', KEYS[3], 'done:' .. seq, 'attempt:' .. seq, 'failed:' .. seq)
  redis.call('HSET', KEYS[3], inflight_field(seq), publishing_mark(ARGV[2]))
end
return 1
