-- The in-flight mark format (celery_durable/store/marks.py documents it), prepended
-- to every script so that no script parses or writes a mark by hand.
--   p:<ms> being published  q:<ms>:<queue> queued  c:<ms>:<worker> taken by a worker
--   r:<retry at ms>:<deadline ms> waiting to retry  k:<ms> a child run, live
--   <ms> running until then
local function inflight_field(seq) return 'inflight:' .. seq end
local function mark_kind(mark)
  if not mark then return nil end
  local prefix = string.sub(mark, 1, 2)
  if prefix == 'p:' or prefix == 'q:' or prefix == 'c:' or prefix == 'r:' or prefix == 'k:' then
    return string.sub(mark, 1, 1)
  end
  return 'running'
end
local function running_until(mark)
  if mark_kind(mark) == 'running' then return tonumber(mark) end
  return nil
end
local function retry_at(mark)
  if mark_kind(mark) == 'r' then return tonumber(string.match(mark, '^r:(%d+)')) end
  return nil
end
local function publishing_mark(now) return 'p:' .. now end
local function queued_mark(now, queue) return 'q:' .. now .. ':' .. queue end
local function taken_mark(now, worker) return 'c:' .. now .. ':' .. worker end
local function retry_mark(at, deadline) return 'r:' .. at .. ':' .. deadline end
local function child_mark(now) return 'k:' .. now end
