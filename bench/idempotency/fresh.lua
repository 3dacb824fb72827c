-- wrk script: POST /pay with a fresh Idempotency-Key on every request
-- (thread number, counter and a random part), a small JSON payment body.
local counter = 0
local tid = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  tid = tid or 0
  math.randomseed(os.time() + (tid or 0))
end
local body = '{"amount":1999,"currency":"eur","description":"order 42"}'
local base = string.format("%08x", math.random(0, 0x7fffffff))
function request()
  counter = counter + 1
  local key = string.format("k-%s-%d-%d", base, tid or 0, counter)
  return wrk.format("POST", "/pay",
    {["Content-Type"] = "application/json", ["Idempotency-Key"] = key}, body)
end
