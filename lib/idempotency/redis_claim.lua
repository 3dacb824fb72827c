local k = KEYS[1]
local fp, tok, now, lu, ex = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local r = redis.call('HMGET', k, 'f', 's', 'l', 'e')
if (not r[1]) or tonumber(r[4]) <= now then
  redis.call('DEL', k)
  redis.call('HSET', k, 'f', fp, 's', '1', 't', tok, 'l', lu, 'e', ex)
  redis.call('PEXPIRE', k, ARGV[6])
  return {0}
end
if r[1] ~= fp then return {3} end
if r[2] == '2' then
  local c = redis.call('HMGET', k, 'c', 'h', 'b')
  return {2, 0, tonumber(c[1]), c[2], c[3]}
end
local l = tonumber(r[3])
if l > now then return {1, l - now} end
redis.call('HSET', k, 't', tok, 'l', lu)
return {4}
