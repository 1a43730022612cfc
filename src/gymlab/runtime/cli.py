"""``gymlab runtime serve``: run one remote environment (Xvnc + env + rewarder)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

from gymlab.rewarder.protocol import Mode


def add_parser(subparsers: Any) -> None:
    """Register ``runtime`` and its ``serve`` subcommand."""
    runtime = subparsers.add_parser("runtime", help="run a remote Gym environment runtime")
    sub = runtime.add_subparsers(dest="runtime_command", metavar="COMMAND")
    runtime.set_defaults(func=lambda _args: (runtime.print_help(), 2)[1])
    serve = sub.add_parser(
        "serve",
        help="serve one environment over VNC + rewarder until SIGTERM or SIGINT",
        description=(
            "Start Xvnc, draw the environment into it and serve the rewarder. SIGTERM and "
            "SIGINT stop it (exit 0); a bad argument or a port in use exits 2 with one line."
        ),
    )
    serve.add_argument("--env-id", required=True, help="Gymnasium environment id")
    serve.add_argument("--vnc-port", type=int, required=True, help="VNC (RFB) TCP port")
    serve.add_argument("--rewarder-port", type=int, required=True, help="rewarder TCP port")
    serve.add_argument(
        "--password-file", required=True, help="file whose first line is the password"
    )
    serve.add_argument(
        "--mode",
        choices=[m.value for m in Mode],
        default=Mode.REALTIME.value,
        help="how the env advances",
    )
    serve.add_argument(
        "--fps", type=float, default=60.0, help="real-time frame rate, 1..1000 (default 60)"
    )
    serve.add_argument("--bind", default="127.0.0.1", help="address VNC and rewarder listen on")
    serve.add_argument(
        "--display", type=int, default=None, help="X display number (default: a free one)"
    )
    serve.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    serve.set_defaults(func=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    """Entry point of ``gymlab runtime serve``; returns the exit code."""
    # Until the event loop takes them over, both signals interrupt the (slow) start-up
    # the same way, so that either one ends it quietly with exit 0.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return _serve(args)
    except KeyboardInterrupt:
        return 0


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # websockets logs one INFO line per rejected HTTP upgrade; ours already says why.
    logging.getLogger("gymlab.rewarder.websockets").setLevel(logging.WARNING)
    from gymlab.runtime.core import (
        ConfigError,
        RuntimeConfig,
        check_ports,
        run_runtime,
        with_password_file,
    )

    try:
        config = with_password_file(
            RuntimeConfig(
                env_id=args.env_id,
                password="-",
                vnc_port=args.vnc_port,
                rewarder_port=args.rewarder_port,
                mode=args.mode,
                fps=args.fps,
                bind=args.bind,
                display=args.display,
            ),
            args.password_file,
        )
        config.validate()
        check_ports(config)  # again in run_runtime; here it spares starting the loop
        return run_runtime(config)
    except ConfigError as exc:
        print(f"gymlab runtime: error: {exc}", file=sys.stderr)
        return 2
