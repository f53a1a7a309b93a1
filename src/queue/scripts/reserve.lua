-- ARGV[6] new lease token, ARGV[7] worker id, ARGV[8] lease length (ms)
-- Returns {job_id, token, deadline_ms, reserved_at_ms, job hash} or nil.
promote_due()
if reclaim_expired() then
  touch_project()
  return false
end
local id = redis.call('LPOP', wait_k)
while id and redis.call('EXISTS', job_key(id)) == 0 do
  id = redis.call('LPOP', wait_k)
end
if not id then
  touch_project()
  return false
end
drop_dedup(id)
local deadline = now + tonumber(ARGV[8])
local jk = job_key(id)
redis.call('HSET', jk, 'state', 'active', 'token', ARGV[6], 'worker', ARGV[7], 'deadline', deadline)
redis.call('HSET', active_k, 'job', id, 'token', ARGV[6], 'worker', ARGV[7], 'deadline', deadline,
  'reserved_at', now)
touch_project()
return {id, ARGV[6], deadline, now, redis.call('HGETALL', jk)}
