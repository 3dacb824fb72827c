local META = KEYS[1]
local P = string.sub(META, 1, -6)
local AV, SC, RN = P .. ':avail', P .. ':sched', P .. ':run'
local DE, DO, CA, ALL = P .. ':dead', P .. ':done', P .. ':cancel', P .. ':all'
local NOW = ARGV[1]
local now = tonumber(NOW)
local function jk(id) return P .. ':job:' .. id end
local function n0(x) return string.format('%.0f', x) end
local function cnt(state, d) redis.call('HINCRBY', META, 'n:' .. state, d) end
local function to_avail(id, prio)
  local seq = redis.call('HINCRBY', META, 'seq', 1)
  redis.call('ZADD', AV, n0((tonumber(prio) + 1000) * 4398046511104 + seq), id)
end
local function add_err(k, attempt, msg)
  local e = redis.call('HGET', k, 'errors') or ''
  redis.call('HSET', k, 'errors', e .. attempt .. ' ' .. NOW .. ' ' .. #msg .. '\n' .. msg)
end
local function del_job(id, state)
  local k = jk(id)
  local u = redis.call('HGET', k, 'unique_key')
  if u then
    local uk = P .. ':uniq:' .. u
    if redis.call('GET', uk) == id then redis.call('DEL', uk) end
  end
  redis.call('DEL', k)
  redis.call('ZREM', ALL, id)
  cnt(state, -1)
end
local function rescue(limit)
  local ids = redis.call('ZRANGEBYSCORE', RN, '-inf', '(' .. NOW, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    local k = jk(id)
    redis.call('ZREM', RN, id)
    local f = redis.call('HMGET', k, 'state', 'attempt', 'max_attempts', 'worker', 'priority')
    if f[1] == 'running' then
      add_err(k, f[2], 'lease expired: worker ' .. (f[4] or '?') .. ' stopped renewing it')
      redis.call('HDEL', k, 'lease_until', 'worker')
      cnt('running', -1)
      if tonumber(f[2]) >= tonumber(f[3]) then
        redis.call('HSET', k, 'state', 'discarded', 'discarded_at', NOW, 'run_at', NOW, 'updated_at', NOW)
        redis.call('ZADD', DE, NOW, id)
        cnt('discarded', 1)
      else
        redis.call('HSET', k, 'state', 'retryable', 'run_at', NOW, 'updated_at', NOW)
        to_avail(id, f[5])
        cnt('retryable', 1)
      end
    end
  end
  return #ids
end
