-- ARGV[6] new job id, ARGV[7] coalescing key, ARGV[8] job data (JSON), ARGV[9] max attempts
-- Returns {job_id, coalesced (0|1)}.
local id = ARGV[6]
local dk = ARGV[7]
local existing = redis.call('HGET', dedup_k, dk)
if existing then
  if redis.call('HGET', job_key(existing), 'state') == 'waiting' then
    return {existing, 1}
  end
  redis.call('HDEL', dedup_k, dk)
end
redis.call('HSET', job_key(id), 'id', id, 'data', ARGV[8], 'attempts', 0, 'max_attempts', ARGV[9],
  'stalls', 0, 'dedup', dk, 'state', 'waiting')
redis.call('HSET', dedup_k, dk, id)
redis.call('RPUSH', wait_k, id)
redis.call('SADD', projects_k, project_id)
return {id, 0}
