-- ARGV[6] job id, ARGV[7] token, ARGV[8] lease length (ms)
-- Returns the new deadline (ms), or -1 if the lease is lost.
local id = ARGV[6]
if not own_lease(id, ARGV[7]) then
  touch_project()
  return -1
end
local deadline = now + tonumber(ARGV[8])
redis.call('HSET', active_k, 'deadline', deadline)
redis.call('HSET', job_key(id), 'deadline', deadline)
return deadline
