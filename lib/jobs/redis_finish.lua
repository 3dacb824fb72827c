local worker = ARGV[2]
local applied = 0
for i = 3, #ARGV, 5 do
  local id, kind, run_at, err = ARGV[i], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local k = jk(id)
  local f = redis.call('HMGET', k, 'state', 'attempt', 'worker', 'priority')
  if f[1] == 'running' and f[2] == ARGV[i + 1] and f[3] == worker then
    applied = applied + 1
    redis.call('ZREM', RN, id)
    redis.call('HDEL', k, 'lease_until')
    cnt('running', -1)
    if err ~= '' and kind ~= 'C' and kind ~= 'S' and kind ~= 'L' then
      add_err(k, f[2], string.sub(err, 2))
    end
    local to
    if kind == 'C' then
      to = 'completed'
      redis.call('HSET', k, 'state', to, 'completed_at', NOW, 'updated_at', NOW)
      redis.call('ZADD', DO, NOW, id)
    elseif kind == 'R' then
      to = 'retryable'
      redis.call('HSET', k, 'state', to, 'run_at', run_at, 'updated_at', NOW)
      redis.call('ZADD', SC, run_at, id)
    elseif kind == 'X' then
      to = 'cancelled'
      redis.call('HSET', k, 'state', to, 'cancelled_at', NOW, 'updated_at', NOW)
      redis.call('ZADD', CA, NOW, id)
    elseif kind == 'S' then
      to = 'scheduled'
      redis.call('HINCRBY', k, 'attempt', -1)
      redis.call('HSET', k, 'state', to, 'run_at', run_at, 'updated_at', NOW)
      redis.call('ZADD', SC, run_at, id)
    elseif kind == 'L' then
      to = 'available'
      redis.call('HINCRBY', k, 'attempt', -1)
      redis.call('HSET', k, 'state', to, 'run_at', NOW, 'updated_at', NOW)
      to_avail(id, f[4])
    else
      to = 'discarded'
      redis.call('HSET', k, 'state', to, 'discarded_at', NOW, 'updated_at', NOW)
      redis.call('ZADD', DE, NOW, id)
    end
    cnt(to, 1)
  end
end
return applied
