-- Read-only. Returns the ms at which the project can next make progress, or nil if it has no
-- waiting, delayed or active job: the live lease's deadline if a job is active, now if jobs wait
-- (or a lease has expired), else the earliest delayed due time.
local a = redis.call('HMGET', active_k, 'deadline')
if a[1] then
  local dl = tonumber(a[1])
  if dl > now then
    return dl
  end
  return now
end
if redis.call('LLEN', wait_k) > 0 then
  return now
end
local first = redis.call('ZRANGE', delayed_k, 0, 0, 'WITHSCORES')
if first[2] then
  local due = tonumber(first[2])
  if due < now then
    return now
  end
  return due
end
return false
