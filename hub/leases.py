"""The Lua scripts of the hub's Redis leases: who runs a symbol's matcher, a symbol's bars, a
live run. A lease is a key holding its owner's token with an expiry; only the owner renews or
releases it, atomically (a lease that expired and went to another is never touched)."""

from __future__ import annotations

# KEYS[1] the lease, ARGV[1] the owner's token, ARGV[2] milliseconds: 1 renewed, 0 not ours.
RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

# Every lease in KEYS at once: a list of 1 (renewed) and 0 (not ours any more), in KEYS' order.
RENEW_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
    if redis.call('get', key) == ARGV[1] then
        redis.call('pexpire', key, ARGV[2])
        out[i] = 1
    else
        out[i] = 0
    end
end
return out
"""

# KEYS[1] the lease, ARGV[1] the owner's token: 1 released, 0 not ours.
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""
