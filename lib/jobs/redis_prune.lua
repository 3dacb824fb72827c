local limit = tonumber(ARGV[4])
local out = {}
local function sweep(z, cut, state)
  if cut == '' or #out >= limit then return end
  local ids = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. cut, 'LIMIT', 0, limit - #out)
  for _, id in ipairs(ids) do
    redis.call('ZREM', z, id)
    del_job(id, state)
    out[#out + 1] = id
  end
end
sweep(DO, ARGV[2], 'completed')
sweep(DE, ARGV[3], 'discarded')
sweep(CA, ARGV[3], 'cancelled')
return out
