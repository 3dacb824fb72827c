local last, limit, kind, state = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local budget = tonumber(ARGV[6])
local out = {0, 0}
local found, seen = 0, 0
while found < limit and seen < budget do
  local ids = redis.call('ZRANGEBYSCORE', ALL, '(' .. n0(last), '+inf', 'LIMIT', 0, 256)
  if #ids == 0 then out[1] = 1; break end
  for _, id in ipairs(ids) do
    last = tonumber(id)
    seen = seen + 1
    local f = redis.call('HMGET', jk(id), 'kind', 'payload', 'unique_key', 'state',
      'priority', 'attempt', 'max_attempts', 'worker', 'created_at', 'run_at',
      'attempted_at', 'completed_at', 'discarded_at', 'cancelled_at', 'updated_at',
      'lease_until', 'errors')
    if f[1] and (kind == '' or f[1] == kind) and (state == '' or f[4] == state) then
      out[#out + 1] = id
      for x = 1, 17 do out[#out + 1] = f[x] end
      found = found + 1
      if found >= limit then break end
    end
    if seen >= budget then break end
  end
end
out[2] = n0(last)
return out
