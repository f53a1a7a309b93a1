-- ARGV[6] job id, ARGV[7] token, ARGV[8] class (transient|permanent|rate_limited|unavailable),
-- ARGV[9] error text, ARGV[10] backoff base (ms), ARGV[11] jitter factor (0..1),
-- ARGV[12] retry-after (ms, rate_limited and unavailable only)
-- Returns {'retry', due_ms} | {'dead', 0} | {'lost', 0}.
local id = ARGV[6]
if not own_lease(id, ARGV[7]) then
  touch_project()
  return {'lost', 0}
end
local class = ARGV[8]
local err = ARGV[9]
local jk = job_key(id)
redis.call('DEL', active_k)
redis.call('HSET', jk, 'last_error', err)
local due
if class == 'permanent' then
  kill(id, 'permanent', err)
  touch_project()
  return {'dead', 0}
elseif class == 'rate_limited' or class == 'unavailable' then
  due = now + tonumber(ARGV[12])
else
  local attempts = redis.call('HINCRBY', jk, 'attempts', 1)
  local max_attempts = tonumber(redis.call('HGET', jk, 'max_attempts')) or 1
  if attempts >= max_attempts then
    kill(id, 'exhausted', err)
    touch_project()
    return {'dead', 0}
  end
  local delay = tonumber(ARGV[10]) * (2 ^ (attempts - 1)) * (1 + tonumber(ARGV[11]))
  due = now + math.floor(delay)
end
redis.call('HSET', jk, 'state', 'delayed', 'due', due)
redis.call('HDEL', jk, 'token', 'worker', 'deadline')
redis.call('ZADD', delayed_k, due, id)
touch_project()
return {'retry', due}
