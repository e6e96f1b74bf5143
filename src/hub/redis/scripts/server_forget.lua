-- A server that stopped refreshing is taken off the list of live servers, unless
-- it refreshed meanwhile (then nothing is swept: it is alive), and put on the set
-- of servers to sweep, where it stays until its users have all left (so that a
-- sweep cut short by a failure or a restart is finished at a later heartbeat, by
-- any server). KEYS[1] the servers' sorted set, KEYS[2] the set to sweep (same
-- slot). ARGV[1] the server, ARGV[2] the time to live in ms (0: at once, for a
-- server's own stop), ARGV[3] the set's time to live in ms. Returns 1 when it was
-- taken off.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(ARGV[2]) > 0 and tonumber(score) > now - tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
