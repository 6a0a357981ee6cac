"""KVP pools: the codec (pool files, their locks) and the pool watcher.

The codec's names are re-exported here (``from agent import kvp`` then
``kvp.read_pool``): it is cheap to import (os, fcntl) and used on every path.
The watcher is imported from ``agent.kvp.poolwatch`` where it is needed.
"""

from agent.kvp.codec import (
    GUEST_POOL,
    HOST_POOL,
    KEY_SIZE,
    MAX_POOL_BYTES,
    POOL_COUNT,
    RECORD_SIZE,
    VALUE_SIZE,
    Item,
    KvpError,
    KvpLockWait,
    Pool,
    check_item,
    decode,
    encode,
    pool_path,
    read_pool,
    update_pool,
    write_guest_items,
)

__all__ = [
    "GUEST_POOL", "HOST_POOL", "KEY_SIZE", "POOL_COUNT", "RECORD_SIZE", "VALUE_SIZE", "Item", "KvpError",
    "KvpLockWait", "MAX_POOL_BYTES", "Pool",
    "check_item", "decode", "encode", "pool_path", "read_pool", "update_pool", "write_guest_items",
]
