-- wrk script: POST /pay with one Idempotency-Key used before (run.sh sends
-- it once first), so every request is a replay of the stored answer.
local body = '{"amount":1999,"currency":"eur","description":"order 42"}'
function request()
  return wrk.format("POST", "/pay",
    {["Content-Type"] = "application/json", ["Idempotency-Key"] = "replayed-key-0001"}, body)
end
