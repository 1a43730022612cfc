"""``gymlab runtime serve``: run one remote environment (Xvnc + env + rewarder)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

from gymlab.deployment import DEFAULT_FPS, DEFAULT_MODE
from gymlab.rewarder.protocol import Mode

SERVE_EXAMPLES = """\
examples:
  # a lab's own env package (gym-foo pattern: gymnasium.register in its __init__)
  gymlab runtime serve --env-id gym_foo:Foo-v0 --mode lockstep --vnc-port 5900 \\
      --rewarder-port 15900 --password-file ~/.config/gymlab/pw
  # Atari from ale-py, no frame skipping, played by hand over VNC (arrows + space)
  gymlab runtime serve --env-id ALE/Pong-v5 --env-kwargs '{"frameskip": 1}' \\
      --mode realtime --fps 60 --vnc-port 5901 --rewarder-port 15901 --password-file pw
  # real time with your own keys (Discrete(3): 0 left, 1 stay, 2 right)
  echo '{"keys": {"j": 0, "l": 2}, "idle": 1}' > keys.json
  gymlab runtime serve --env-id MountainCar-v0 --keymap keys.json ...
"""


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
        epilog=SERVE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--env-id",
        required=True,
        help=(
            "what gymnasium.make takes: a registered id (CartPole-v1), a plugin family's "
            "(ALE/Pong-v5, MiniGrid-Empty-5x5-v0) or module:EnvId (gym_foo:Foo-v0 imports "
            "gym_foo first, as a lab's own env package registers its envs on import)"
        ),
    )
    serve.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULES",
        help="modules to import first, comma-separated, repeatable (an empty value: none)",
    )
    serve.add_argument(
        "--env-kwargs",
        default="",
        metavar="JSON",
        help="a JSON object of gymnasium.make arguments, e.g. '{\"frameskip\": 1}'",
    )
    serve.add_argument(
        "--keymap",
        default="",
        metavar="FILE",
        help=(
            'real-time key map, JSON or YAML: {"keys": {"Left": 0, "Up+space": 2}, '
            '"idle": 1} (default: the shipped or derived map for the env)'
        ),
    )
    serve.add_argument("--vnc-port", type=int, required=True, help="VNC (RFB) TCP port")
    serve.add_argument("--rewarder-port", type=int, required=True, help="rewarder TCP port")
    serve.add_argument(
        "--password-file", required=True, help="file whose first line is the password"
    )
    serve.add_argument(
        "--mode",
        choices=[m.value for m in Mode],
        default=DEFAULT_MODE.value,
        help=f"how the env advances (default {DEFAULT_MODE.value})",
    )
    serve.add_argument(
        "--fps",
        type=float,
        default=DEFAULT_FPS,
        help=f"real-time frame rate, 1..1000 (default {DEFAULT_FPS:g})",
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
    from gymlab.runtime.envs import parse_env_kwargs, parse_imports

    try:
        config = with_password_file(
            RuntimeConfig(
                env_id=args.env_id,
                imports=parse_imports(args.imports),
                env_kwargs=parse_env_kwargs(args.env_kwargs),
                keymap_file=args.keymap or None,
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
