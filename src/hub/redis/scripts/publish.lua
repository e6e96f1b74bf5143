-- Number, keep, publish (sent with every publication: see scripts.rs).
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[1], epoch)
  redis.call('DEL', KEYS[2], KEYS[3])
end
local offset = redis.call('INCR', KEYS[2])
local keep = tonumber(ARGV[3])
if keep > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', keep, '0-' .. offset, 'k', ARGV[6], 'p', ARGV[7], 'o', ARGV[4], 's', ARGV[10], 'x', ARGV[5])
end
local ttl = tonumber(ARGV[9])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  if keep > 0 then redis.call('PEXPIRE', KEYS[3], ttl) end
end
local envelope = 'v2\n' .. ARGV[4] .. '\n' .. ARGV[10] .. '\n' .. ARGV[5] .. '\n' .. epoch .. '\n' .. offset .. '\n' .. ARGV[6] .. '\n' .. ARGV[7]
if ARGV[8] == '1' then
  redis.call('SPUBLISH', ARGV[1], envelope)
else
  redis.call('PUBLISH', ARGV[1], envelope)
end
return offset
