"""Redis store, for admins on several hosts: a record is a JSON string, its state is indexed in one set per
state, and data-plane activity lives in a hash of its own.

Writes that touch the record and its index run as one Lua script (atomic on the server, so two admins never
leave a record in two state sets). The client reconnects by itself: a call during a Redis restart is retried
with backoff for a few seconds before it fails.
"""

from __future__ import annotations

import json
from typing import Any

from rock_admin.config import AdminConfigError
from rock_admin.store.base import SandboxStore

#: KEYS: the record, the id → state hash; ARGV: id, state, JSON, key prefix, only_new ('1': insert_new).
_PUT = """
local old = redis.call('HGET', KEYS[2], ARGV[1])
if ARGV[5] == '1' and old and old ~= 'deleted' then
    return 0
end
if old then
    redis.call('SREM', ARGV[4] .. ':state:' .. old, ARGV[1])
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('SADD', ARGV[4] .. ':state:' .. ARGV[2], ARGV[1])
return 1
"""

#: KEYS: the activity hash; ARGV: id, time, id, time, ... (a later time wins).
_TOUCH = """
for i = 1, #ARGV, 2 do
    local old = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
    if tonumber(ARGV[i + 1]) > old then
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    end
end
return 1
"""

#: How long a call keeps retrying while Redis is unreachable (a restart takes about a second).
RECONNECT_SECONDS = 10.0


class RedisStore(SandboxStore):
    def __init__(self, url: str, prefix: str = "rock") -> None:
        try:
            import redis
            from redis.backoff import ExponentialBackoff
            from redis.retry import Retry
        except ImportError:
            raise AdminConfigError(
                "store: redis needs the redis package (pip install 'rock-admin[redis]')"
            ) from None

        self.prefix = prefix
        # Retries (backoff 10 ms doubling to 1 s) cover a Redis restart; then the error reaches the caller.
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=5,
            socket_connect_timeout=2,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.01), retries=int(RECONNECT_SECONDS) + 6),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
            health_check_interval=10,
        )
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            raise AdminConfigError(f"redis_url: cannot reach Redis at {url}: {exc}") from None
        self._put = self._redis.register_script(_PUT)
        self._touch = self._redis.register_script(_TOUCH)

    def _key(self, sandbox_id: str) -> str:
        return f"{self.prefix}:sb:{sandbox_id}"

    @property
    def _states(self) -> str:
        return f"{self.prefix}:states"

    def _write(self, record: dict[str, Any], only_new: bool) -> bool:
        sid = record["sandbox_id"]
        args = [sid, record["state"], json.dumps(record), self.prefix, "1" if only_new else "0"]
        return bool(self._put(keys=[self._key(sid), self._states], args=args))

    def put(self, record: dict[str, Any]) -> None:
        self._write(record, only_new=False)

    def insert_new(self, record: dict[str, Any]) -> bool:
        return self._write(record, only_new=True)

    def get(self, sandbox_id: str) -> dict[str, Any] | None:
        raw = self._redis.get(self._key(sandbox_id))
        return json.loads(raw) if raw else None

    def list(self, states: list[str] | None = None) -> list[dict[str, Any]]:
        if states:
            ids: set[bytes] = set()
            for state in states:
                ids.update(self._redis.smembers(f"{self.prefix}:state:{state}"))
        else:
            ids = set(self._redis.hkeys(self._states))
        if not ids:
            return []
        keys = [self._key(i.decode()) for i in ids]
        records = [json.loads(raw) for raw in self._redis.mget(keys) if raw]
        return sorted(records, key=lambda r: r.get("create_time") or 0.0)

    def touch(self, times: dict[str, float]) -> None:
        if times:
            args = [x for sid, seen in times.items() for x in (sid, repr(seen))]
            self._touch(keys=[f"{self.prefix}:activity"], args=args)

    def activity(self, sandbox_ids: list[str]) -> dict[str, float]:
        if not sandbox_ids:
            return {}
        values = self._redis.hmget(f"{self.prefix}:activity", sandbox_ids)
        return {sid: float(v) for sid, v in zip(sandbox_ids, values, strict=True) if v is not None}

    def close(self) -> None:
        self._redis.close()
