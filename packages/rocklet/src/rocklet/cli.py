"""`rocklet --host --port --uds --auth-token`: serve the API with uvicorn on TCP or a Unix socket."""

from __future__ import annotations

import argparse
import gc
import os
import sys

from rocklet import __version__
from rocklet.config import RockletConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rocklet", description=__doc__)
    parser.add_argument("-v", "--version", action="version", version=f"rocklet {__version__}")
    parser.add_argument("--host", default="0.0.0.0", help="TCP address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    parser.add_argument("--uds", default=None, help="listen on this Unix domain socket instead of TCP")
    parser.add_argument(
        "--auth-token",
        default=os.environ.get("ROCKLET_AUTH_TOKEN", ""),
        help="require this X-API-Key on every request (default $ROCKLET_AUTH_TOKEN; empty disables auth)",
    )
    defaults = RockletConfig()
    parser.add_argument(
        "--max-output-bytes",
        type=int,
        default=defaults.max_output_bytes,
        help="most bytes of one command's output kept (head and tail; default %(default)s)",
    )
    parser.add_argument(
        "--max-read-bytes",
        type=int,
        default=defaults.max_read_bytes,
        help="largest file read_file returns (default %(default)s)",
    )
    parser.add_argument(
        "--max-process-output-bytes",
        type=int,
        default=defaults.max_process_output_bytes,
        help="most bytes a background process's stdout (and stderr) file keeps (default %(default)s)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=defaults.max_body_bytes,
        help="largest request body, uploads included (default %(default)s)",
    )
    parser.add_argument(
        "--state-dir",
        default=defaults.state_dir,
        help="where session rc files and process output live (default: a new temp dir)",
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    try:
        args = build_parser().parse_args(argv)
    except ValueError as exc:  # a malformed ROCKLET_* setting
        sys.exit(f"rocklet: {exc}")
    import uvicorn

    from rocklet.app import create_app
    from rocklet.server import QuietServer

    config = RockletConfig(
        auth_token=args.auth_token,
        max_output_bytes=args.max_output_bytes,
        max_read_bytes=args.max_read_bytes,
        max_body_bytes=args.max_body_bytes,
        max_process_output_bytes=args.max_process_output_bytes,
        state_dir=args.state_dir,
    )
    app = create_app(config)
    # Everything imported so far lives as long as the process: keep it out of the collector's way, and
    # collect young objects less often (each request makes many short-lived ones), trimming latency tails.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    server_kwargs: dict[str, object] = {"log_level": args.log_level, "access_log": False, "lifespan": "on"}
    if args.uds:
        if os.path.exists(args.uds):
            os.unlink(args.uds)
        server_kwargs["uds"] = args.uds
    else:
        server_kwargs.update(host=args.host, port=args.port)
    QuietServer(uvicorn.Config(app, **server_kwargs)).run()  # type: ignore[arg-type]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
