"""Stable-Baselines3's ``VecEnv`` over a :class:`gymlab.RemoteVectorEnv`.

>>> env = gymlab.make("CartPole-v1", remotes=2, autoreset_mode="same_step")
>>> model = PPO("CnnPolicy", VecMonitor(RemoteVecEnv(env))).learn(10_000)

SB3 resets sub-envs itself the moment they end and expects the terminal observation in
``infos[i]["terminal_observation"]``: that is Gymnasium's SAME_STEP autoreset, which the
remote env must use (in lockstep its terminal frames are exact). On the step that ends env
``i``'s episode, ``infos[i]`` is the finished episode's last info (the vector infos'
``final_info``) with ``terminal_observation`` (``final_obs``); the new episode's info goes to
``reset_infos[i]``, as in SB3's ``DummyVecEnv``. Every ``infos[i]`` has
``TimeLimit.truncated`` (truncated and not terminated). Observations are the remote env's
(pixels as HxWx3 uint8: SB3's ``CnnPolicy`` transposes them itself).

The sub-envs are remote runtimes: ``get_attr``/``set_attr`` reach the vector env's own
attributes (one value for all, e.g. ``render_mode``), ``env_method`` raises
:class:`NotImplementedError` naming the method, ``env_is_wrapped`` is False for each. Any
Gymnasium ``VectorEnv`` in SAME_STEP mode can be wrapped: tests/sb3 checks the adapter over
Gymnasium's ``SyncVectorEnv`` against SB3's own ``DummyVecEnv``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

try:
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv
except ModuleNotFoundError as exc:  # one line naming the fix; a broken torch says itself why
    if (exc.name or "").split(".")[0] != "stable_baselines3":
        raise
    raise ModuleNotFoundError(
        "gymlab.integrations.sb3 needs stable-baselines3: pip install 'gymlab[sb3]'",
        name=exc.name,
    ) from None

from gymlab.client.vector import RemoteVectorEnv

#: Vector-info keys that SB3's per-env info dicts get in their own form instead.
_AUTORESET_KEYS = ("final_obs", "final_info")


def per_env_infos(infos: dict[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """Gymnasium's vector infos (arrays with ``_key`` masks) as one dict per sub-env.

    Sub-env ``i`` gets ``key`` only where ``infos["_key"][i]`` is True; a nested dict becomes
    nested per-env dicts the same way. A key without a mask goes to every sub-env (its
    element ``i`` when it holds one value per sub-env). ``final_obs``/``final_info`` are left
    out: :meth:`RemoteVecEnv.step_wait` gives them SB3's form.
    """
    out: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, value in infos.items():
        if (key.startswith("_") and key[1:] in infos) or key in _AUTORESET_KEYS:
            continue
        mask = infos.get(f"_{key}")
        if isinstance(value, dict):
            nested = per_env_infos(value, num_envs)
            for i in range(num_envs):
                if mask is None or mask[i]:
                    out[i][key] = nested[i]
            continue
        batched = mask is not None or (
            isinstance(value, (np.ndarray, list, tuple)) and len(value) == num_envs
        )
        for i in range(num_envs):
            if mask is None or mask[i]:
                item = value[i] if batched else value
                out[i][key] = item.item() if isinstance(item, np.generic) else item
    return out


class RemoteVecEnv(VecEnv):
    """SB3 ``VecEnv`` adapter; ``env`` must use ``autoreset_mode=SAME_STEP``."""

    def __init__(self, env: RemoteVectorEnv) -> None:
        mode = env.metadata.get("autoreset_mode")
        if mode is not AutoresetMode.SAME_STEP:
            name = getattr(mode, "name", mode)
            raise ValueError(
                f"RemoteVecEnv needs autoreset_mode=SAME_STEP (SB3 resets sub-envs in the "
                f"step that ends them), got {name}: gymlab.make(..., autoreset_mode='same_step')"
            )
        self.env = env
        self.render_mode = "rgb_array"
        self._actions: Any = None
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    # ----- the VecEnv API ----------------------------------------------------------------

    def reset(self) -> Any:
        """Reset every remote, seeded by :meth:`seed` and :meth:`set_options` (once), as SB3."""
        seeds = list(self._seeds)
        seed = None if all(s is None for s in seeds) else seeds
        options = self._options[0] if self._options else {}
        if any(o != options for o in self._options):
            raise NotImplementedError(
                "set_options() with different options per sub-env: the remote env takes one "
                "options dict for all of them"
            )
        obs, infos = self.env.reset(seed=seed, **({"options": options} if options else {}))
        self.reset_infos = per_env_infos(infos, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Remember the actions; :meth:`step_wait` steps every remote at once."""
        self._actions = actions

    def step_wait(self) -> tuple[Any, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Step; ended sub-envs carry ``terminal_observation`` and their episode's last info."""
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async(actions)")
        actions, self._actions = self._actions, None
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        dones = terminated | truncated
        per_env = per_env_infos(infos, self.num_envs)
        final_infos = per_env_infos(infos.get("final_info", {}), self.num_envs)
        has_final_info = infos.get("_final_info", np.zeros(self.num_envs, bool))
        has_final_obs = infos.get("_final_obs", np.zeros(self.num_envs, bool))
        for i in np.flatnonzero(dones):
            if has_final_info[i]:
                # SAME_STEP: the step's own info is the new episode's, SB3 keeps it apart
                self.reset_infos[i] = per_env[i]
                per_env[i] = final_infos[i]
            if has_final_obs[i] and infos["final_obs"][i] is not None:
                per_env[i]["terminal_observation"] = infos["final_obs"][i]
        for index, info in enumerate(per_env):
            info["TimeLimit.truncated"] = bool(truncated[index] and not terminated[index])
        return obs, np.asarray(rewards, dtype=np.float32), dones, per_env

    def close(self) -> None:
        """Close the remote env (and any local runtimes it started)."""
        self.env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        """The latest frame of every remote."""
        frames = self.env.render()
        return list(frames) if frames is not None else [None] * self.num_envs

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        """An attribute of the remote env, once per index (its sub-envs are not local)."""
        return [getattr(self.env, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        """Set an attribute of the remote env; only for all sub-envs at once."""
        if len(self._indices(indices)) != self.num_envs:
            raise NotImplementedError(
                f"set_attr({attr_name!r}) on some remotes: they share one RemoteVectorEnv"
            )
        setattr(self.env, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        """Sub-env methods run in remote runtimes, out of reach: refused by name."""
        own = (
            f"; call the vector env's: .env.{method_name}" if hasattr(self.env, method_name) else ""
        )
        raise NotImplementedError(
            f"env_method({method_name!r}): remote sub-envs have no local methods to call{own}"
        )

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        """Remote sub-envs carry no local Gymnasium wrappers."""
        return [False] * len(self._indices(indices))

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices if isinstance(indices, Iterable) else [indices])
