-- A user's first connection on this server joined. ARGV[4] user, ARGV[5] "1" with
-- metadata, ARGV[6] the metadata.
if redis.call('SADD', KEYS[1], ARGV[4]) == 0 then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local n = redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if n == 1 then
  if ARGV[5] == '1' then
    redis.call('HSET', KEYS[3], ARGV[4], ARGV[6])
    redis.call('PEXPIRE', KEYS[3], ARGV[3])
  end
  announce('J', ARGV[4], ARGV[5] .. ARGV[6])
end
return 1
