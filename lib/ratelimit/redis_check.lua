pcall(redis.replicate_commands)
local key = KEYS[1]
local kind = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local P = tonumber(ARGV[4])
local T = tonumber(ARGV[5])
local cost = tonumber(ARGV[6])
local commit = ARGV[7] == '1'
local ws = tonumber(ARGV[8])
local we = tonumber(ARGV[9])
local now
if ARGV[10] then now = tonumber(ARGV[10]) else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local st = redis.call('HMGET', key, 'k', 'a', 'b', 'c')
local present = st[1] and tonumber(st[1]) == kind
local a, b, c = 0, 0, 0
if present then a = tonumber(st[2]); b = tonumber(st[3]); c = tonumber(st[4]) end
local floor, ceil = math.floor, math.ceil
local function f(x) return string.format('%.17g', x) end
local function muldiv(x, y, z)
  local d, n = {}, 0
  while x > 0 do n = n + 1; d[n] = x % 128; x = (x - d[n]) / 128 end
  local q, r = 0, 0
  for i = n, 1, -1 do
    local t = r * 128 + d[i] * y
    local g = floor(t / z)
    q = q * 128 + g
    r = t - g * z
  end
  return q
end
local function keep(na, nb, nc, until_us)
  if not commit then return end
  redis.call('HSET', key, 'k', kind, 'a', f(na), 'b', f(nb), 'c', f(nc))
  local ms = ceil((until_us - now) / 1000) + 1000
  if ms < 1000 then ms = 1000 end
  redis.call('PEXPIRE', key, ms)
end
if kind == 1 then
  local tau = T * burst
  local tat = now
  if present and a > now then tat = a end
  local have = now - (tat - tau)
  if have < 0 then have = 0 end
  local rem = floor(have / T)
  if cost > burst then return {0, rem, tat - now, -1, 0, now} end
  local new_tat = tat + T * cost
  local allow_at = new_tat - tau
  if allow_at > now then return {0, rem, tat - now, allow_at - now, 0, now} end
  keep(new_tat, 0, 0, new_tat)
  return {1, floor((now - (new_tat - tau)) / T), new_tat - now, 0, 0, now}
elseif kind == 2 then
  local w = now - now % P
  local count = 0
  if present and a == w then count = c end
  local rem = limit - count
  if rem < 0 then rem = 0 end
  if cost > limit or count + cost > limit then
    local reset = 0
    if count > 0 then reset = w + P - now end
    local retry = -1
    if cost <= limit then retry = w + P - now end
    return {0, rem, reset, retry, 0, now}
  end
  count = count + cost
  keep(w, 0, count, w + P)
  local reset = 0
  if count > 0 then reset = w + P - now end
  return {1, limit - count, reset, 0, 0, now}
elseif kind == 3 then
  local w = now - now % P
  local prev, curr = 0, 0
  if present and a == w then prev = b; curr = c
  elseif present and a == w - P then prev = c end
  local e = now - w
  local pw = 0
  if prev > 0 then pw = prev - muldiv(prev, e, P) end
  local function reset_of(cu)
    if cu > 0 then return w + 2 * P - now end
    if prev > 0 then return w + P - now end
    return 0
  end
  if cost > limit or curr + cost + pw > limit then
    local rem = limit - curr - pw
    if rem < 0 then rem = 0 end
    local retry = -1
    if cost <= limit then
      if curr + cost <= limit then
        retry = w + P - muldiv(limit - curr - cost, P, prev) - now
      else
        local ee = 0
        if limit - cost < curr then ee = P - muldiv(limit - cost, P, curr) end
        retry = w + P + ee - now
      end
      if retry < 1 then retry = 1 end
    end
    return {0, rem, reset_of(curr), retry, 0, now}
  end
  curr = curr + cost
  local until_us = w + P
  if curr > 0 then until_us = w + 2 * P end
  keep(w, prev, curr, until_us)
  return {1, limit - curr - pw, reset_of(curr), 0, 0, now}
else
  local used = 0
  if present and a == ws then used = c end
  if limit > 0 and (cost > limit or used + cost > limit) then
    local rem = limit - used
    if rem < 0 then rem = 0 end
    local retry = -1
    if cost <= limit then retry = 1 end
    return {0, rem, 0, retry, used, now}
  end
  used = used + cost
  if commit then
    redis.call('HSET', key, 'k', kind, 'a', f(ws), 'b', '0', 'c', f(used))
    redis.call('PEXPIRE', key, ceil((we - ws) / 1000) + 86400000)
  end
  local rem = 0
  if limit > 0 then rem = limit - used end
  return {1, rem, 0, 0, used, now}
end
