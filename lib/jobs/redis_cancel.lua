local id = ARGV[2]
local k = jk(id)
local st = redis.call('HGET', k, 'state')
if not st then return {0, ''} end
if st ~= 'available' and st ~= 'scheduled' and st ~= 'retryable' then return {-1, st} end
redis.call('ZREM', AV, id)
redis.call('ZREM', SC, id)
redis.call('HSET', k, 'state', 'cancelled', 'cancelled_at', NOW, 'updated_at', NOW)
redis.call('ZADD', CA, NOW, id)
cnt(st, -1); cnt('cancelled', 1)
return {1, st}
