-- Where a topic stands, and what came after `since`. KEYS: epoch, offset, stream.
-- ARGV: fresh epoch, since's epoch, since's offset, "1" when asked, ttl in ms (0:
-- none). Returns {epoch, last offset, recovered (0/1), entries}.
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
  redis.call('DEL', KEYS[2], KEYS[3])
  local ttl = tonumber(ARGV[5])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[4] ~= '1' then return {epoch, last, 0, {}} end
local since = tonumber(ARGV[3])
if ARGV[2] ~= epoch or since == nil or since > last then return {epoch, last, 0, {}} end
if since == last then return {epoch, last, 1, {}} end
local first = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
if #first == 0 then return {epoch, last, 0, {}} end
local oldest = tonumber(string.match(first[1][1], '^0%-(%d+)$'))
if oldest == nil or oldest > since + 1 then return {epoch, last, 0, {}} end
return {epoch, last, 1, redis.call('XRANGE', KEYS[3], '0-' .. (since + 1), '0-' .. last)}
