local n = tonumber(ARGV[1])
local last = redis.call('INCRBY', KEYS[1], n)
local first = last - n + 1
local seen = {}
for i = 1, n do
  local q = ARGV[i + 1]
  redis.call('HSET', KEYS[2], string.format('%.0f', first + i - 1), q)
  if not seen[q] then seen[q] = true; redis.call('SADD', KEYS[3], q) end
end
return first
