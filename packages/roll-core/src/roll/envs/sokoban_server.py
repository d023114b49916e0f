"""The Sokoban game server that `SokobanSandboxEnv` runs inside a ROCK sandbox (ROLL's `server.py`).

    python -m roll.envs.sokoban_server --env-id sokoban --env-kwargs '{"dim_room": [6, 6]}' --port-file F

One gem_envs env per server, on 127.0.0.1 (a port of its own, written to `--port-file` once listening).
Protocol: one JSON object per line each way, ASCII only. Requests carry a sequence number `n`:
`{"n": 1, "op": "reset", "seed": 3}`, `{"n": 2, "op": "step", "action": "<answer>Up</answer>"}`,
`{"n": 3, "op": "ping"}`. Replies start with `{"n": <n>, ` so a shell client can pick its own reply by
prefix; they carry the GEM result (`observation`, `info`, and for steps `reward`, `terminated`,
`truncated`) or `error`. A request repeating the last `n` gets the last reply again without being
applied twice, so a client may resend after a lost reply. Needs only the standard library and gem_envs.

`--call reset|step|ping` (with `--seed` / `--action`) is the client, as upstream's `client.py ... --json`:
one request to the server named by `--port-file`, the reply printed as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from typing import Any


class GameSession:
    """One env and the last reply (for resent requests)."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any]) -> None:
        import gem_envs

        self.env = gem_envs.make(env_id, **env_kwargs)
        self.last: tuple[int, str] | None = None

    def handle(self, line: str) -> str:
        try:
            request = json.loads(line)
            n = request["n"]
        except (ValueError, KeyError, TypeError) as exc:
            return json.dumps({"n": None, "error": f"bad request: {exc!r}"})
        if self.last is not None and self.last[0] == n:
            return self.last[1]
        try:
            result = self._apply(request)
        except Exception as exc:  # the env's own error travels to the client, the server stays up
            result = {"error": f"{type(exc).__name__}: {exc}"}
        reply = json.dumps({"n": n, **result})
        self.last = (n, reply)
        return reply

    def _apply(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "reset":
            observation, info = self.env.reset(seed=request.get("seed"))
            return {"observation": observation, "info": info}
        if op == "step":
            observation, reward, terminated, truncated, info = self.env.step(request["action"])
            return {
                "observation": observation,
                "reward": reward,
                "terminated": terminated,
                "truncated": truncated,
                "info": info,
            }
        if op == "ping":
            return {"ok": True}
        raise ValueError(f"unknown op {op!r}; one of reset, step, ping")


def serve(session: GameSession, port_file: str, port: int = 0) -> None:
    """Accept one client at a time and answer its lines until it disconnects; runs until killed."""
    with socket.create_server(("127.0.0.1", port)) as server:
        tmp = f"{port_file}.tmp"
        with open(tmp, "w") as f:
            f.write(str(server.getsockname()[1]))
        os.replace(tmp, port_file)  # readers never see a half-written port
        while True:
            conn, _ = server.accept()
            with conn, conn.makefile("r", encoding="ascii") as reader:
                for line in reader:
                    if line.strip():
                        conn.sendall((session.handle(line) + "\n").encode("ascii"))


def call(port_file: str, payload: dict[str, Any]) -> str:
    """One request to the server whose port is in `port_file`; returns the reply line."""
    with open(port_file) as f:
        port = int(f.read())
    with (
        socket.create_connection(("127.0.0.1", port)) as conn,
        conn.makefile("r", encoding="ascii") as reader,
    ):
        # a fresh number per call: a separate client process must never get another request's cached reply
        request = {"n": f"call-{os.getpid()}-{time.monotonic_ns()}", **payload}
        conn.sendall((json.dumps(request, ensure_ascii=True) + "\n").encode("ascii"))
        return reader.readline().strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="sokoban")
    parser.add_argument("--env-kwargs", default="{}", help="JSON object of env keyword arguments")
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--call", choices=("reset", "step", "ping"), help="act as the client: one request")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--action", default="")
    args = parser.parse_args(argv)
    if args.call:
        extra = {"reset": {"seed": args.seed}, "step": {"action": args.action}, "ping": {}}[args.call]
        print(call(args.port_file, {"op": args.call, **extra}))
        return
    serve(GameSession(args.env_id, json.loads(args.env_kwargs)), args.port_file, args.port)


if __name__ == "__main__":
    main()
