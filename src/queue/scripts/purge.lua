-- Deletes everything queued for the project. Returns {waiting, delayed, active, dead, completed}.
local function drop_all(ids)
  for _, id in ipairs(ids) do
    redis.call('DEL', job_key(id))
  end
  return #ids
end
local waiting = drop_all(redis.call('LRANGE', wait_k, 0, -1))
local delayed = drop_all(redis.call('ZRANGE', delayed_k, 0, -1))
local active = 0
local aid = redis.call('HGET', active_k, 'job')
if aid then
  active = drop_all({aid})
end
local dead = drop_all(redis.call('ZRANGE', dead_k, 0, -1))
local completed = redis.call('LLEN', completed_k)
redis.call('DEL', wait_k, delayed_k, active_k, dedup_k, dead_k, completed_k)
redis.call('SREM', projects_k, project_id)
return {waiting, delayed, active, dead, completed}
