-- What this server missed of a topic's publications since it last delivered one
-- (a gap in what the subscription brought, or its reconnection). KEYS as
-- locate.lua's. ARGV: the last delivered epoch and offset. Returns {epoch, last
-- offset, oldest entry offset kept (0: none), entries after the last delivered,
-- or, in another epoch, all of it that is kept}. It writes nothing.
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {'', 0, 0, {}} end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local since = 0
if ARGV[1] == epoch then since = tonumber(ARGV[2]) end
if since >= last then return {epoch, last, 0, {}} end
local first = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
if #first == 0 then return {epoch, last, 0, {}} end
local oldest = tonumber(string.match(first[1][1], '^0%-(%d+)$'))
if oldest == nil then return {epoch, last, 0, {}} end
local from = since + 1
if oldest > from then from = oldest end
return {epoch, last, oldest, redis.call('XRANGE', KEYS[3], '0-' .. from, '0-' .. last)}
