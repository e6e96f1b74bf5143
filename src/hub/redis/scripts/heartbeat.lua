-- This server is alive; which servers are not (no refresh for ARGV[2] ms). KEYS[1]
-- the servers' sorted set. ARGV[1] this server, ARGV[3] the set's time to live in
-- ms. Returns {1 when this server was not listed (new, or swept as dead, or Redis
-- lost it), dead}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local new = redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return {new, dead}
