redis.call('HSET', k, 's', '2', 'c', ARGV[3], 'h', ARGV[4], 'b', ARGV[5], 'l', '0')
return 1
