"""``RemoteEnv``: a plain ``gymnasium.Env`` over one gymlab remote.

What a single-environment API expects (Gymnasium's and Stable-Baselines3's ``check_env``, a
Gymnasium wrapper stack, RLlib's env creators): ``reset``/``step``/``render``/``close`` on
one environment, unbatched. It is a :class:`~gymlab.client.vector.RemoteVectorEnv` of one
remote underneath, so it has the same options, faults and modes: in lockstep the step that
ends an episode returns the exact terminal observation, and the caller resets (a ``step``
after the end instead starts the next episode, returning its first observation with reward
0, as Gymnasium's vector envs do); a remote that fails returns ``truncated=True`` with
``info["error"]`` and is reconnected in the background.

The remote's bookkeeping (its episode id and frame number) is kept out of ``info``, in
:attr:`RemoteEnv.episode_id` and :attr:`RemoteEnv.frame`: a single env's infos must be the
same for the same seed and actions (``check_env`` checks), and those count up regardless.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from gymlab.client.remotes import parse_remotes
from gymlab.client.vector import RemoteVectorEnv


def _unbatched(infos: dict[str, Any]) -> dict[str, Any]:
    """Remote 0's entries of a vector env's infos (keys it has no value for are left out)."""
    info: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}")
        if mask is not None and not bool(np.asarray(mask)[0]):
            continue
        info[key] = _unbatched(value) if isinstance(value, dict) else value[0]
    return info


class RemoteEnv(gymnasium.Env[Any, Any]):
    """One remote as a ``gymnasium.Env``: ``RemoteEnv("vnc://host:5900+15900", password)``.

    ``remote`` is one remotes-string entry (or a remotes string naming one remote), or ``1``
    with ``env_id=`` for a local runtime. Every other keyword is
    :class:`~gymlab.client.vector.RemoteVectorEnv`'s (``mode``, ``observation``, timeouts,
    ``encodings``, ...). ``render()`` returns the display's latest frame.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        remote: str | int,
        password: str | None = None,
        *,
        render_mode: str | None = "rgb_array",
        **options: Any,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        count = remote if isinstance(remote, int) else len(parse_remotes(remote).remotes)
        if count != 1:
            raise ValueError(
                f"RemoteEnv serves one remote, got {count}; use RemoteVectorEnv for several"
            )
        self.vector = RemoteVectorEnv(remote, password, **options)
        self.render_mode = render_mode
        #: the remote's episode id and the frame number of the last reset or step
        self.episode_id: int | None = None
        self.frame: int | None = None
        self.observation_space = self.vector.single_observation_space
        self.action_space = self.vector.single_action_space

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the remote (``options`` are refused: a remote takes none)."""
        if options:
            raise ValueError(f"RemoteEnv.reset takes no options, got {sorted(options)}")
        super().reset(seed=seed)
        obs, infos = self.vector.reset(seed=None if seed is None else [seed])
        return self._first(obs), self._info(infos)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, rewards, terminations, truncations, infos = self.vector.step([action])
        return (
            self._first(obs),
            float(rewards[0]),
            bool(terminations[0]),
            bool(truncations[0]),
            self._info(infos),
        )

    def render(self) -> np.ndarray | None:
        frames = self.vector.render() if self.render_mode == "rgb_array" else None
        return None if frames is None else frames[0]

    def close(self) -> None:
        self.vector.close()

    def _info(self, infos: dict[str, Any]) -> dict[str, Any]:
        info = _unbatched(infos)
        self.episode_id = info.pop("episode_id", None)
        self.frame = info.pop("frame", None)
        return info

    @staticmethod
    def _first(obs: Any) -> Any:
        if isinstance(obs, dict):
            return {key: value[0] for key, value in obs.items()}
        return obs[0]
