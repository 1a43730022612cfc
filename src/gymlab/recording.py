"""Video recording: mp4 files via ffmpeg (imageio-ffmpeg's bundled binary or the system one).

* :class:`Mp4Writer` -- RGB frames in, H.264 mp4 out (the one place that talks to ffmpeg).
* :class:`gymlab.wrappers.RecordEpisodes` (uses :class:`Mp4Writer`) -- one mp4 per episode
  per sub-env of a vector env (what Universe users did with ``wrappers.Monitor``).
* :func:`record_vnc` / ``gymlab record`` -- record what a runtime's display shows, from the
  VNC side (the runtime's X display only admits clients holding its cookie, so this needs
  nothing but the VNC password).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: What :class:`FfmpegMissing` says (one line): the two ways to get an ffmpeg.
FFMPEG_MISSING = "gymlab record needs ffmpeg: pip install 'gymlab[record]' or install ffmpeg"


class FfmpegMissing(RuntimeError):
    """No ffmpeg to encode with (neither imageio-ffmpeg's nor one on PATH)."""


def ffmpeg_executable() -> str:
    """The ffmpeg to encode with: imageio-ffmpeg's (the ``record`` extra), else the system's.

    Raises :class:`FfmpegMissing` (one line, :data:`FFMPEG_MISSING`) when there is neither.
    """
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):  # not installed, or installed without its binary
        found = shutil.which("ffmpeg")
        if found is None:
            raise FfmpegMissing(FFMPEG_MISSING) from None
        return found


class Mp4Writer:
    """Write ``(H, W, 3)`` uint8 frames of one size to an H.264 mp4 at ``fps``.

    Frames go to an ffmpeg subprocess as raw RGB on its stdin (:func:`ffmpeg_executable`).
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.width, self.height = width, height
        self.frames = 0
        # yuv420p (what players expect) needs even sizes: pad, never rescale the pixels
        pad = ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"] if width % 2 or height % 2 else []
        command = [
            ffmpeg_executable(), "-y", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps:g}",
            "-i", "-", *pad, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18",
            str(self.path),
        ]  # fmt: skip
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            command, stdin=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def write(self, frame: np.ndarray) -> None:
        """Append one frame (must match the writer's size)."""
        if self._proc is None or self._proc.stdin is None:
            raise ValueError(f"{self.path}: writer is closed")
        if frame.shape != (self.height, self.width, 3):
            raise ValueError(
                f"{self.path}: frame {frame.shape} != ({self.height}, {self.width}, 3)"
            )
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        except BrokenPipeError:
            self.close()  # raises with ffmpeg's own reason
            raise
        self.frames += 1

    def close(self) -> Path:
        """Finish the file; returns its path. Idempotent. RuntimeError if ffmpeg failed."""
        proc, self._proc = self._proc, None
        if proc is not None:
            assert proc.stdin is not None and proc.stderr is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            error = proc.stderr.read().decode(errors="replace").strip().splitlines()
            if proc.wait() != 0:
                reason = error[-1] if error else f"exit code {proc.returncode}"
                raise RuntimeError(f"ffmpeg could not write {self.path}: {reason}")
        return self.path


async def record_vnc(
    host: str,
    port: int,
    password: str | None,
    out: str | Path,
    *,
    seconds: float,
    fps: float = 30.0,
    connect_timeout: float = 10.0,
) -> int:
    """Record ``seconds`` of a VNC server's screen at ``fps`` into ``out``; returns frames written.

    The client streams updates and samples the newest frame every ``1/fps`` seconds, so the
    file's timeline is wall-clock time (a still screen gives repeated frames).
    """
    from gymlab.client.vnc import VNCConnection

    conn = await VNCConnection.connect(host, port, password, timeout=connect_timeout)
    writer: Mp4Writer | None = None
    try:
        await conn.start_streaming()
        await conn.wait_for_update(0, timeout=connect_timeout)
        writer = Mp4Writer(out, conn.width, conn.height, fps)
        total = max(1, round(seconds * fps))
        start = time.monotonic()
        for n in range(total):
            delay = start + n / fps - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            _, frame = conn.latest_frame()
            if frame.shape[:2] != (writer.height, writer.width):
                frame = _fit(frame, writer.height, writer.width)  # the desktop was resized
            writer.write(frame)
        return writer.frames
    finally:
        if writer is not None:
            writer.close()
        await conn.close()


def _fit(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    out = np.zeros((height, width, 3), np.uint8)
    h, w = min(height, frame.shape[0]), min(width, frame.shape[1])
    out[:h, :w] = frame[:h, :w]
    return out


# ----- gymlab record ----------------------------------------------------------------------


def add_parser(subparsers: Any) -> None:
    """Register ``gymlab record``."""
    parser = subparsers.add_parser(
        "record",
        help="record a runtime's screen (over VNC) to an mp4 file",
        description="Connect to a runtime's VNC server and record its screen to an mp4 file.",
    )
    parser.add_argument("remote", help="vnc://HOST:VNC_PORT+REWARDER_PORT (first remote used)")
    parser.add_argument("out", help="output .mp4 file")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration (default 10)")
    parser.add_argument("--fps", type=float, default=30.0, help="frames per second (default 30)")
    parser.add_argument(
        "--password-file", help="file whose first line is the password (or ?password= in REMOTE)"
    )
    parser.set_defaults(func=record_command)


def record_command(args: argparse.Namespace) -> int:
    """Entry point of ``gymlab record``."""
    from gymlab.client.remotes import parse_remotes
    from gymlab.client.vnc import VNCError

    try:
        ffmpeg_executable()  # before connecting: say what to install, not a VNC error
    except FfmpegMissing as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        password = None
        if args.password_file:
            lines = Path(args.password_file).read_text(encoding="utf-8").splitlines()
            password = lines[0].strip() if lines else ""
        spec = parse_remotes(args.remote, password)
        if args.seconds <= 0 or args.fps <= 0:
            raise ValueError("--seconds and --fps must be positive")
        remote = spec.remotes[0]
        frames = asyncio.run(
            record_vnc(
                remote.host,
                remote.vnc_port,
                spec.password,
                args.out,
                seconds=args.seconds,
                fps=args.fps,
            )
        )
    except (ValueError, OSError, RuntimeError, VNCError) as exc:  # FfmpegMissing too
        print(f"gymlab record: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {frames} frames to {args.out}")
    return 0
