return rescue(tonumber(ARGV[2]))
