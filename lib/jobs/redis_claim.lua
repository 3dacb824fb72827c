local worker, lease, max = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
rescue(1000)
local due = redis.call('ZRANGEBYSCORE', SC, '-inf', NOW, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', SC, id)
  to_avail(id, redis.call('HGET', jk(id), 'priority') or '0')
end
local out = {}
local untl = n0(now + lease)
local ids = redis.call('ZRANGE', AV, 0, max - 1)
if #ids > 0 then redis.call('ZREM', AV, unpack(ids)) end
for _, id in ipairs(ids) do
  local k = jk(id)
  local f = redis.call('HMGET', k, 'state', 'kind', 'payload', 'max_attempts', 'priority')
  if f[1] then
    local a = redis.call('HINCRBY', k, 'attempt', 1)
    redis.call('HSET', k, 'state', 'running', 'worker', worker, 'attempted_at', NOW,
      'updated_at', NOW, 'lease_until', untl)
    redis.call('ZADD', RN, untl, id)
    cnt(f[1], -1); cnt('running', 1)
    local o = #out
    out[o + 1] = id; out[o + 2] = f[2]; out[o + 3] = f[3]; out[o + 4] = a
    out[o + 5] = tonumber(f[4]); out[o + 6] = tonumber(f[5])
  end
end
return out
