"""A random agent on gymlab remotes: prints the return of every finished episode.

    python examples/random_agent.py vnc://127.0.0.1:5900+15900 --password-file pw.txt
    python examples/random_agent.py --local 2 --steps 300   # starts 2 runtimes itself

The number of steps is bounded (``--steps``); episodes still running at the end are not shown.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import numpy as np

import gymlab
from gymlab.supervisor import local_runtimes, remotes_string


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("remotes", nargs="?", help="vnc://HOST:VNC_PORT+REWARDER_PORT,...")
    parser.add_argument("--password-file", help="file whose first line is the password")
    parser.add_argument("--local", type=int, default=0, help="start N local runtimes instead")
    parser.add_argument("--mode", choices=("lockstep", "realtime"), default="lockstep")
    parser.add_argument("--env-id", default="CartPole-v1")
    parser.add_argument("--steps", type=int, default=500, help="vector steps to take")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.remotes and not args.local:
        parser.error("give REMOTES or --local N")

    with contextlib.ExitStack() as stack:
        password = None
        if args.local:
            runtimes = stack.enter_context(local_runtimes(args.local, args.env_id, mode=args.mode))
            remotes = remotes_string(runtimes)  # carries the runtimes' shared password
        else:
            remotes = args.remotes
            if args.password_file:
                password = Path(args.password_file).read_text().splitlines()[0].strip()
        env = gymlab.make(args.env_id, remotes=remotes, password=password, mode=args.mode)
        stack.callback(env.close)
        env.action_space.seed(args.seed)
        env.reset(seed=args.seed)
        returns = np.zeros(env.num_envs)
        lengths = np.zeros(env.num_envs, int)
        restarting = np.zeros(env.num_envs, bool)  # NEXT_STEP: this step resets those remotes
        for _ in range(args.steps):
            _, rewards, terminations, truncations, infos = env.step(env.action_space.sample())
            returns += rewards
            lengths += ~restarting
            restarting = terminations | truncations
            for i in np.flatnonzero(restarting):
                error = infos["error"][i] if infos.get("_error", [False] * env.num_envs)[i] else ""
                note = f"  (remote error: {error})" if error else ""
                print(f"env {i}: episode return {returns[i]:.1f} in {lengths[i]} steps{note}")
                returns[i], lengths[i] = 0.0, 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
