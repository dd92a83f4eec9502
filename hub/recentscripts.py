"""The Lua scripts behind recent topics (``Bus.publish_recent`` and ``publish_recent_batch``):
each takes the next sequences, keeps the bounded history stream and the epoch, and publishes,
in one atomic step on the Redis side.

One event. KEYS: the topic's sequence hash, history stream and channel; ARGV: the payload, a
new epoch (kept only when the topic has none), the history's maxlen, the keys' ttl. Returns
{sequence, epoch}.
"""

PUBLISH_RECENT = """
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
  redis.call('DEL', KEYS[2])
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], seq .. '-0', 'd', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', KEYS[3], seq .. '\\n' .. epoch .. '\\n' .. ARGV[1])
return {seq, epoch}
"""

# Many events on many recent topics in one call. KEYS: per topic its sequence hash, history
# stream and channel; ARGV: a new epoch, maxlen, ttl, then per topic a count and its payloads.
# Each topic's events take consecutive sequences and go out as one batch message
# ("*first\nepoch\n" then the payloads, one a line), which every reader splits back. Returns
# per topic {first sequence, epoch}.
PUBLISH_RECENT_BATCH = """
local out = {}
local arg = 4
for t = 1, #KEYS / 3 do
  local seq_key, hist_key, channel = KEYS[3 * t - 2], KEYS[3 * t - 1], KEYS[3 * t]
  local n = tonumber(ARGV[arg])
  local last = redis.call('HINCRBY', seq_key, 'seq', n)
  local first = last - n + 1
  local epoch = redis.call('HGET', seq_key, 'epoch')
  if not epoch then
    epoch = ARGV[1]
    redis.call('HSET', seq_key, 'epoch', epoch)
    redis.call('DEL', hist_key)
  end
  local payloads = {}
  for i = 1, n do
    local data = ARGV[arg + i]
    payloads[i] = data
    redis.call('XADD', hist_key, 'MAXLEN', '~', ARGV[2], (first + i - 1) .. '-0', 'd', data)
  end
  redis.call('EXPIRE', seq_key, ARGV[3])
  redis.call('EXPIRE', hist_key, ARGV[3])
  redis.call('PUBLISH', channel, '*' .. first .. '\\n' .. epoch .. '\\n' .. table.concat(payloads, '\\n'))
  out[t] = {first, epoch}
  arg = arg + n + 1
end
return out
"""
