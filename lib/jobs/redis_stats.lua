local r = redis.call('HMGET', META, 'n:available', 'n:scheduled', 'n:running',
  'n:retryable', 'n:completed', 'n:discarded', 'n:cancelled')
local out = {}
for i = 1, 7 do out[i] = tonumber(r[i] or '0') end
out[8] = redis.call('ZCARD', AV) + redis.call('ZCOUNT', SC, '-inf', NOW)
return out
