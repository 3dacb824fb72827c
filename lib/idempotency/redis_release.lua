redis.call('DEL', k)
return 1
