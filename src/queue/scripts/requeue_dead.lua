-- ARGV[6] job id. Moves a dead job back to waiting with attempts and stalls reset.
-- Returns 1, or 0 if it is not a dead job of this project.
local id = ARGV[6]
if redis.call('ZREM', dead_k, id) == 0 then
  return 0
end
local jk = job_key(id)
if redis.call('EXISTS', jk) == 0 then
  return 0
end
redis.call('HSET', jk, 'attempts', 0, 'stalls', 0)
redis.call('HDEL', jk, 'reason', 'died_at')
push_waiting(id, false)
touch_project()
return 1
