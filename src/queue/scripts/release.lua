-- ARGV[6] job id, ARGV[7] token. Hands the job back (front of the queue), no attempt spent.
-- Returns 1, or 0 if the lease is lost.
local id = ARGV[6]
if not own_lease(id, ARGV[7]) then
  touch_project()
  return 0
end
redis.call('DEL', active_k)
push_waiting(id, true)
touch_project()
return 1
