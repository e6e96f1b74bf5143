-- A server that stopped refreshing is taken off the list of live servers, unless
-- it refreshed meanwhile (then nothing is swept: it is alive). KEYS[1] the
-- servers' sorted set. ARGV[1] the server, ARGV[2] the time to live in ms (0:
-- at once, for a server's own stop). Returns 1 when it was taken off.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(ARGV[2]) > 0 and tonumber(score) > now - tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
