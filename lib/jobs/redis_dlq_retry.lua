local ids
if ARGV[2] ~= '0' then ids = {ARGV[2]}
else ids = redis.call('ZRANGE', DE, 0, tonumber(ARGV[3]) - 1) end
local n = 0
for _, id in ipairs(ids) do
  local k = jk(id)
  local f = redis.call('HMGET', k, 'state', 'priority')
  if f[1] == 'discarded' then
    redis.call('ZREM', DE, id)
    redis.call('HSET', k, 'state', 'available', 'attempt', '0', 'run_at', NOW, 'updated_at', NOW)
    redis.call('HDEL', k, 'worker')
    to_avail(id, f[2])
    cnt('discarded', -1); cnt('available', 1)
    n = n + 1
  end
end
return n
