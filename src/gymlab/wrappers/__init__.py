"""Gymnasium wrappers for gymlab envs.

:class:`RecordEpisodes` records one mp4 per episode per sub-env of a vector env (the use case
of Universe's ``wrappers.Monitor``), writing through :class:`gymlab.recording.Mp4Writer`:
imageio-ffmpeg's ffmpeg (``pip install 'gymlab[record]'``) or else the system's ``ffmpeg``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from gymlab.recording import Mp4Writer, ffmpeg_executable

__all__ = ["RecordEpisodes"]


class RecordEpisodes(VectorWrapper):
    """Record every sub-env's episodes of a vector env with image observations to mp4 files.

    Files are ``{directory}/{prefix}-env{i}-ep{n:04d}.mp4``; :attr:`videos` lists the finished
    ones. Works with ``NEXT_STEP`` auto-reset (the terminal frame is the last step's
    observation) and ``SAME_STEP`` (the terminal frame is taken from ``final_obs``). Frames of a
    remote that is down (``infos["remote_down"]``) are skipped.
    """

    def __init__(
        self,
        env: VectorEnv[Any, Any, Any],
        directory: str | Path,
        *,
        fps: float | None = None,
        name_prefix: str = "episode",
    ) -> None:
        ffmpeg_executable()  # FfmpegMissing now (one line: what to install), not at reset
        super().__init__(env)
        self.directory = Path(directory)
        self.fps = float(fps or env.metadata.get("render_fps") or getattr(env, "fps", 0) or 30)
        self.name_prefix = name_prefix
        self.videos: list[Path] = []
        mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self._same_step = mode == AutoresetMode.SAME_STEP
        self._writers: list[Mp4Writer | None] = [None] * env.num_envs
        self._episodes = [0] * env.num_envs
        self._start_next = [False] * env.num_envs

    def _start(self, i: int, frame: np.ndarray) -> None:
        self._finish(i)
        path = self.directory / f"{self.name_prefix}-env{i}-ep{self._episodes[i]:04d}.mp4"
        self._episodes[i] += 1
        height, width = frame.shape[:2]
        writer = self._writers[i] = Mp4Writer(path, width, height, self.fps)
        writer.write(frame)

    def _finish(self, i: int) -> None:
        writer = self._writers[i]
        if writer is not None:
            self._writers[i] = None
            self.videos.append(writer.close())

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env; every sub-env starts a new file."""
        obs, infos = self.env.reset(seed=seed, options=options)
        for i in range(self.env.num_envs):
            self._start(i, obs[i])
            self._start_next[i] = False
        return obs, infos

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Step the env and append each sub-env's frame to its current file."""
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        down = infos.get("remote_down")
        down_mask = infos.get("_remote_down")
        final_obs = infos.get("final_obs")
        for i in range(self.env.num_envs):
            if down is not None and down_mask is not None and down_mask[i] and down[i]:
                self._finish(i)
                self._start_next[i] = True
                continue
            done = bool(terminations[i] or truncations[i])
            if self._start_next[i]:
                self._start(i, obs[i])
                self._start_next[i] = False
            elif self._same_step and done:
                last = final_obs[i] if final_obs is not None else None
                writer = self._writers[i]
                if isinstance(last, np.ndarray) and writer is not None:
                    writer.write(last)
                self._start(i, obs[i])
            else:
                writer = self._writers[i]
                if writer is not None:
                    writer.write(obs[i])
                if done:  # NEXT_STEP: this was the last frame; the next obs is a reset's
                    self._finish(i)
                    self._start_next[i] = True
        return obs, rewards, terminations, truncations, infos

    def close(self, **kwargs: Any) -> None:
        """Finish the open files and close the env."""
        for i in range(len(self._writers)):
            self._finish(i)
        self.env.close(**kwargs)
