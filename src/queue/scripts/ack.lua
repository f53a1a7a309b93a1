-- ARGV[6] job id, ARGV[7] token, ARGV[8] completed-history entry (JSON)
-- Returns 1, or 0 if the lease is lost.
local id = ARGV[6]
if not own_lease(id, ARGV[7]) then
  touch_project()
  return 0
end
redis.call('DEL', active_k)
redis.call('DEL', job_key(id))
redis.call('LPUSH', completed_k, ARGV[8])
redis.call('LTRIM', completed_k, 0, completed_keep - 1)
touch_project()
return 1
