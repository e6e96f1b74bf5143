-- This server is alive; which servers are not (no refresh for ARGV[2] ms), and
-- which were taken off the list but not yet swept. KEYS[1] the servers' sorted
-- set, KEYS[2] the set of servers taken off and not yet swept (same slot). ARGV[1]
-- this server, ARGV[3] the sets' time to live in ms. Returns {1 when this server
-- was not listed (new, or swept as dead, or Redis lost it), dead, unswept}. A
-- server listed again is no longer to be swept: it announces its users again.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local new = redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if new == 1 then redis.call('SREM', KEYS[2], ARGV[1]) end
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
local unswept = redis.call('SMEMBERS', KEYS[2])
return {new, dead, unswept}
