local out = {}
for i = 2, #ARGV, 10 do
  local id, ukey, win = ARGV[i], ARGV[i + 6], tonumber(ARGV[i + 7])
  local dup, uk = nil, nil
  if ARGV[i + 8] ~= '' then
    local ck = P .. ':cron:' .. ARGV[i + 8]
    local last = redis.call('GET', ck)
    if last and tonumber(last) >= tonumber(ARGV[i + 9]) then dup = '0'
    else redis.call('SET', ck, ARGV[i + 9]) end
  end
  if not dup and ukey ~= '' then
    uk = P .. ':uniq:' .. ukey
    local have = redis.call('GET', uk)
    if have then
      local hf = redis.call('HMGET', jk(have), 'unique_key', 'unique_until')
      if hf[1] == ukey then
        if hf[2] == '0' or tonumber(hf[2]) > now then dup = have
        else redis.call('HDEL', jk(have), 'unique_key', 'unique_until') end
      end
    end
  end
  if dup then
    out[#out + 1] = tonumber(dup); out[#out + 1] = 1
  else
    local k = jk(id)
    local state = 'available'
    if tonumber(ARGV[i + 5]) > now then state = 'scheduled' end
    redis.call('HSET', k, 'kind', ARGV[i + 1], 'payload', ARGV[i + 2], 'state', state,
      'priority', ARGV[i + 3], 'attempt', '0', 'max_attempts', ARGV[i + 4],
      'run_at', ARGV[i + 5], 'created_at', NOW, 'updated_at', NOW)
    if uk then
      local untl = '0'
      if win > 0 then untl = n0(now + win) end
      redis.call('HSET', k, 'unique_key', ukey, 'unique_until', untl)
      if win > 0 then redis.call('SET', uk, id, 'PX', ARGV[i + 7])
      else redis.call('SET', uk, id) end
    end
    redis.call('ZADD', ALL, id, id)
    if state == 'available' then to_avail(id, ARGV[i + 3])
    else redis.call('ZADD', SC, ARGV[i + 5], id) end
    cnt(state, 1)
    out[#out + 1] = tonumber(id); out[#out + 1] = 0
  end
end
return out
