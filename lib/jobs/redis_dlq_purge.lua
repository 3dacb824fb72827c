local ids = redis.call('ZRANGEBYSCORE', DE, '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZREM', DE, id)
  del_job(id, 'discarded')
end
return ids
