-- Shared prelude, prepended to every queue script (see src/queue/scripts.rs).
-- KEYS[1] project base key "<prefix>:p:<project_id>"
-- KEYS[2] job hash key prefix "<prefix>:job:"
-- KEYS[3] set of projects with live work "<prefix>:projects"
-- ARGV[1] project id, ARGV[2] now (ms), ARGV[3] max_stalls, ARGV[4] dead_keep, ARGV[5] completed_keep
-- Script-specific arguments start at ARGV[6].
-- Job hashes are addressed from the script (standalone Redis, not cluster-safe by design).
local base = KEYS[1]
local job_prefix = KEYS[2]
local projects_k = KEYS[3]
local project_id = ARGV[1]
local now = tonumber(ARGV[2])
local max_stalls = tonumber(ARGV[3])
local dead_keep = tonumber(ARGV[4])
local completed_keep = tonumber(ARGV[5])

local wait_k = base .. ':wait'
local delayed_k = base .. ':delayed'
local active_k = base .. ':active'
local dedup_k = base .. ':dedup'
local dead_k = base .. ':dead'
local completed_k = base .. ':completed'

local function job_key(id)
  return job_prefix .. id
end

-- Puts a job into the waiting list (front = run next) and registers it for coalescing
-- unless an identical job already waits.
local function push_waiting(id, front)
  local jk = job_key(id)
  local dk = redis.call('HGET', jk, 'dedup')
  if dk then
    redis.call('HSETNX', dedup_k, dk, id)
  end
  redis.call('HSET', jk, 'state', 'waiting')
  redis.call('HDEL', jk, 'due', 'token', 'worker', 'deadline')
  if front then
    redis.call('LPUSH', wait_k, id)
  else
    redis.call('RPUSH', wait_k, id)
  end
end

-- Forgets the coalescing entry of a job that stops waiting.
local function drop_dedup(id)
  local dk = redis.call('HGET', job_key(id), 'dedup')
  if dk and redis.call('HGET', dedup_k, dk) == id then
    redis.call('HDEL', dedup_k, dk)
  end
end

-- Moves a job to dead letters, keeping at most dead_keep of them.
local function kill(id, reason, err)
  local jk = job_key(id)
  redis.call('HSET', jk, 'state', 'dead', 'reason', reason, 'died_at', now)
  if err then
    redis.call('HSET', jk, 'last_error', err)
  end
  redis.call('HDEL', jk, 'due', 'token', 'worker', 'deadline')
  redis.call('ZADD', dead_k, now, id)
  local n = redis.call('ZCARD', dead_k)
  if n > dead_keep then
    local old = redis.call('ZRANGE', dead_k, 0, n - dead_keep - 1)
    for _, oid in ipairs(old) do
      redis.call('DEL', job_key(oid))
    end
    redis.call('ZREMRANGEBYRANK', dead_k, 0, n - dead_keep - 1)
  end
end

-- Moves delayed jobs that are due into the waiting list (bounded work per call).
local function promote_due()
  local due = redis.call('ZRANGEBYSCORE', delayed_k, '-inf', now, 'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    redis.call('ZREM', delayed_k, id)
    if redis.call('EXISTS', job_key(id)) == 1 then
      push_waiting(id, false)
    end
  end
end

-- Returns a job whose lease ran out to the front of the queue with stalls += 1, or to dead
-- letters as 'stalled' once it has stalled max_stalls times.
-- Returns the active fields {job, token, deadline, worker} if a live lease exists, else nil.
local function reclaim_expired()
  local a = redis.call('HMGET', active_k, 'job', 'token', 'deadline', 'worker')
  if not a[1] then
    return nil
  end
  if tonumber(a[3]) > now then
    return a
  end
  redis.call('DEL', active_k)
  local id = a[1]
  local jk = job_key(id)
  if redis.call('EXISTS', jk) == 0 then
    return nil
  end
  local stalls = redis.call('HINCRBY', jk, 'stalls', 1)
  local msg = 'lease held by worker ' .. tostring(a[4]) .. ' expired without ack (worker crashed, was killed or stopped renewing)'
  redis.call('HSET', jk, 'last_error', msg)
  if stalls >= max_stalls then
    kill(id, 'stalled', nil)
  else
    push_waiting(id, true)
  end
  return nil
end

-- Checks that (id, token) is the live lease; an expired one is reclaimed on the spot.
local function own_lease(id, token)
  local a = redis.call('HMGET', active_k, 'job', 'token', 'deadline')
  if not a[1] or a[1] ~= id or a[2] ~= token then
    return false
  end
  if tonumber(a[3]) <= now then
    reclaim_expired()
    return false
  end
  return true
end

-- Keeps the set of projects with waiting, delayed or active work accurate.
local function touch_project()
  if redis.call('LLEN', wait_k) == 0 and redis.call('ZCARD', delayed_k) == 0
      and redis.call('EXISTS', active_k) == 0 then
    redis.call('SREM', projects_k, project_id)
  else
    redis.call('SADD', projects_k, project_id)
  end
end

