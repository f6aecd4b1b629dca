-- Append a replay's new commands; end the run or release the lease.
-- KEYS[1] history  KEYS[2] state  KEYS[3] lease  KEYS[4] steps  KEYS[5] done
-- ARGV[1] lease token  ARGV[2] now (ms)  ARGV[3] final status or ''
-- ARGV[4] final event (JSON) or ''  ARGV[5] retention (s)
-- ARGV[6] '1' to keep the lease (the events include deliveries to replay at once)
-- ARGV[7] marks (JSON): {"queued": [[seq, queue or '' for a child run]],
--         "timers": [[seq, due ms]],
--         "inboxes": [[seq, "kind:token"]], "disposed": [seq],
--         "begin": [] or [seq, running deadline ms, now as JSON seconds]}
-- ARGV[8 ..] events (JSON)
-- Returns {released, attempt}: released is -1 if the lease is not ours (nothing
-- written), 1 if released or ended, 0 if events the caller has not seen arrived
-- meanwhile (it keeps the lease and reads them); attempt is that of the step begun
-- here (0 if none): the one the caller runs itself at once (inline continuation), begun
-- as begin_step.lua would begin it, saving its round trip (only with the lease released).
--
-- The marks make the global indexes safe to write before this script runs: a timer
-- fires, and a webhook or hook receives, only what a committed command marked here.
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {-1, 0} end
-- Many values per RPUSH and HSET (a fan-out's commit carries hundreds), in chunks that
-- stay well inside Lua's stack.
local CHUNK = 500
for i = 8, #ARGV, CHUNK do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + CHUNK - 1, #ARGV)))
end
local marks = cjson.decode(ARGV[7])
local fields = {}
for _, queued in ipairs(marks.queued or {}) do
  -- A step re-dispatched as lost may have recorded its outcome, or begun, meanwhile:
  -- then its mark stays (a running deadline in the future keeps copies from running).
  local seq, queue = queued[1], queued[2]
  local step = redis.call('HMGET', KEYS[4], inflight_field(seq), 'done:' .. seq)
  local until_ms = running_until(step[1] or nil)
  if not step[2] and not (until_ms and until_ms > tonumber(ARGV[2])) then
    fields[#fields + 1] = inflight_field(seq)
    fields[#fields + 1] = queue ~= '' and queued_mark(ARGV[2], queue) or publishing_mark(ARGV[2])
  end
end
for i = 1, #fields, CHUNK * 2 do
  redis.call('HSET', KEYS[4], unpack(fields, i, math.min(i + CHUNK * 2 - 1, #fields)))
end
for _, timer in ipairs(marks.timers or {}) do
  redis.call('HSET', KEYS[4], 'timer:' .. timer[1], string.format('%d', timer[2]))
end
for _, inbox in ipairs(marks.inboxes or {}) do
  redis.call('HSET', KEYS[4], 'inbox:' .. inbox[1], inbox[2])
end
for _, seq in ipairs(marks.disposed or {}) do
  redis.call('HDEL', KEYS[4], 'inbox:' .. seq)
end
if ARGV[3] ~= '' then
  redis.call('RPUSH', KEYS[1], ARGV[4])
  redis.call('HSET', KEYS[2], 'status', ARGV[3], 'ended_at', ARGV[2], 'outcome', ARGV[4])
  redis.call('HDEL', KEYS[2], 'dirty', 'replaying')
  redis.call('DEL', KEYS[3])
  redis.call('RPUSH', KEYS[5], ARGV[3])
  local ttl = tonumber(ARGV[5])
  for i = 1, 5 do
    if i ~= 3 then redis.call('EXPIRE', KEYS[i], ttl) end
  end
  return {1, 0}
end
local keep = ARGV[6] == '1' or redis.call('HEXISTS', KEYS[2], 'dirty') == 1
local attempt = 0
local begin = marks.begin or {}
if #begin == 3 then
  -- A step this very commit schedules, for the caller to run at once. Begun here only
  -- if the lease is released: when events wait (a cancel, say), it is marked being
  -- published instead and begin_step.lua decides once the caller has read them.
  local seq = begin[1]
  local field = inflight_field(seq)
  if not redis.call('HGET', KEYS[4], 'done:' .. seq) then
    if keep then
      redis.call('HSET', KEYS[4], field, publishing_mark(ARGV[2]))
    else
      attempt = redis.call('HINCRBY', KEYS[4], 'attempt:' .. seq, 1)
      redis.call('HSET', KEYS[4], field, string.format('%d', begin[2]))
      redis.call('RPUSH', KEYS[1], '{"type": "step_started", "seq": ' .. seq ..
        ', "attempt": ' .. attempt .. ', "at": ' .. begin[3] .. '}')
    end
  end
end
if keep then return {0, 0} end
redis.call('DEL', KEYS[3])
redis.call('HDEL', KEYS[2], 'replaying')
return {1, attempt}
