local k = KEYS[1]
local r = redis.call('HMGET', k, 's', 't', 'e')
if (not r[1]) or tonumber(r[3]) <= tonumber(ARGV[2]) then return -1 end
if r[1] ~= '1' or r[2] ~= ARGV[1] then return 0 end
