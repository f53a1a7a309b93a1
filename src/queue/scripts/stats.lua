-- Read-only. Returns {waiting, delayed, dead, completed, active hash, active job hash}.
local active = redis.call('HGETALL', active_k)
local job = {}
local id = redis.call('HGET', active_k, 'job')
if id then
  job = redis.call('HGETALL', job_key(id))
end
return {redis.call('LLEN', wait_k), redis.call('ZCARD', delayed_k), redis.call('ZCARD', dead_k),
  redis.call('LLEN', completed_k), active, job}
