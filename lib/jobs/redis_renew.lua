local untl = n0(now + tonumber(ARGV[3]))
for i = 4, #ARGV do
  local k = jk(ARGV[i])
  local f = redis.call('HMGET', k, 'state', 'worker')
  if f[1] == 'running' and f[2] == ARGV[2] then
    redis.call('HSET', k, 'lease_until', untl)
    redis.call('ZADD', RN, untl, ARGV[i])
  end
end
return 0
