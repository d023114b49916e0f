"""`rock-admin serve [--host --port --config FILE]`, `rock-admin image import NAME ROOTFS_DIR_OR_TAR`,
`rock-admin image list`."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from typing import Any

from rock_admin import __version__
from rock_admin.config import AdminConfig, AdminConfigError


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any `extra=` fields."""

    _SKIP = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._SKIP:
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("rock_admin")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def _raise_fd_limit() -> None:
    """Each sandbox holds a pidfd and a few connections: lift the soft open-files limit to the hard one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rock-admin", description="ROCK admin server")
    parser.add_argument("-v", "--version", action="version", version=f"rock-admin {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the sandbox and GEM APIs")
    serve.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8080)")
    serve.add_argument("--config", default=None, help="YAML settings file (default $ROCK_ADMIN_CONFIG)")
    serve.add_argument("--state-dir", default=None, help="where the store, images and sandboxes live")
    serve.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"])
    serve.add_argument("--role", default=None, choices=["all", "read", "write"], help="default all")
    serve.add_argument("--write-url", default=None, help="a read node's write node (http://host:port)")
    serve.add_argument("--store", default=None, choices=["sqlite", "redis"], help="default sqlite")
    serve.add_argument("--redis-url", default=None, help="redis://host:port/db (with --store redis)")
    image = sub.add_parser("image", help="the local image store")
    image_sub = image.add_subparsers(dest="image_command", required=True)
    imp = image_sub.add_parser(
        "import", help="add a root file system (a directory, used in place, or a tarball)"
    )
    imp.add_argument("name")
    imp.add_argument("rootfs")
    imp.add_argument("--config", default=None)
    imp.add_argument("--state-dir", default=None)
    lst = image_sub.add_parser("list", help="list the images")
    lst.add_argument("--config", default=None)
    lst.add_argument("--state-dir", default=None)
    lst.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        overrides: dict[str, Any] = {"state_dir": args.state_dir}
        if args.command == "serve":
            overrides.update(host=args.host, port=args.port, log_level=args.log_level, role=args.role)
            overrides.update(write_url=args.write_url, store=args.store, redis_url=args.redis_url)
        config = AdminConfig.load(args.config, **overrides)
    except (AdminConfigError, NotImplementedError, OSError) as exc:
        print(f"rock-admin: {exc}", file=sys.stderr)
        return 2
    if args.command == "image":
        from rock_admin.images import ImageStore

        store = ImageStore(config.state_dir)
        if args.image_command == "import":
            try:
                image = store.import_image(args.name, args.rootfs)
            except (ValueError, OSError) as exc:
                print(f"rock-admin: {exc}", file=sys.stderr)
                return 2
            print(f"imported {image.name} ({image.rootfs}, python {image.python or 'none'})")
            return 0
        images = store.list()
        if args.json:
            print(json.dumps([i.__dict__ for i in images]))
        else:
            print(f"{'NAME':<24} {'KIND':<9} {'PYTHON':<7} {'CREATED':<20} ROOTFS")
            for i in images:
                created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(i.created)) if i.created else "-"
                print(f"{i.name:<24} {i.kind:<9} {i.python or '-':<7} {created:<20} {i.rootfs}")
        return 0
    _setup_logging(config.log_level)
    _raise_fd_limit()
    import uvicorn

    from rock_admin.api import create_app

    try:
        app = create_app(config)
    except AdminConfigError as exc:  # e.g. a store that cannot be reached
        print(f"rock-admin: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
