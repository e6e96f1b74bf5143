-- A user's last connection on this server left. ARGV[4] user.
if redis.call('SREM', KEYS[1], ARGV[4]) == 0 then return 0 end
leave(ARGV[4])
return 1
