"""End-to-end: mp4 recording of episodes (wrapper) and of a runtime's screen (gymlab record)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _support_runtime import PASSWORD, running_runtime
from gymnasium.vector import AutoresetMode

from gymlab.client import RemoteVectorEnv
from gymlab.wrappers import RecordEpisodes

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("Xvnc") is None, reason="TigerVNC Xvnc is not installed"),
    pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe is not installed"),
]


def probe(path: Path) -> tuple[int, int, int]:
    """(frames, width, height) as ffprobe counts them (decoding every frame)."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames,width,height",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    stream = json.loads(out.stdout)["streams"][0]
    return int(stream["nb_read_frames"]), int(stream["width"]), int(stream["height"])


def middle_frame(path: Path, width: int, height: int, frames: int) -> np.ndarray:
    """Decode one frame from the middle of the video to RGB."""
    out = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(path),
            "-vf",
            f"select=eq(n\\,{frames // 2})",
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return np.frombuffer(out.stdout, np.uint8).reshape(height, width, 3)


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_record_episodes_one_file_per_episode_per_env(tmp_path: Path, mode: AutoresetMode) -> None:
    (tmp_path / "rt").mkdir()
    with running_runtime(tmp_path / "rt", mode="lockstep") as rt:
        remotes = f"127.0.0.1:{rt.vnc_port}+{rt.rewarder_port}"
        env = RecordEpisodes(
            RemoteVectorEnv(remotes, PASSWORD, autoreset_mode=mode), tmp_path / "videos", fps=30
        )
        lengths: list[int] = []
        try:
            env.reset(seed=4)
            steps, restarting = 0, False
            while len(lengths) < 2:
                _, _, terms, truncs, _ = env.step(np.array([0]))  # always left: short episodes
                if restarting:  # NEXT_STEP: this step reset the remote, the next file began
                    restarting = False
                    continue
                steps += 1
                if terms[0] or truncs[0]:
                    lengths.append(steps)
                    steps, restarting = 0, mode is AutoresetMode.NEXT_STEP
                assert steps < 500
            if restarting:
                env.step(np.array([0]))  # the reset step starts the third file
        finally:
            env.close()
    names = sorted(p.name for p in env.videos)
    assert names == [
        "episode-env0-ep0000.mp4",
        "episode-env0-ep0001.mp4",
        "episode-env0-ep0002.mp4",
    ]
    for video, length in zip(sorted(env.videos)[:2], lengths, strict=True):
        # the reset frame plus every step's frame, the exact terminal frame included
        frames, width, height = probe(video)
        assert (frames, width, height) == (length + 1, 600, 400)
        picture = middle_frame(video, width, height, frames)
        assert picture.std() > 5  # a cart and a pole, not one flat colour
    assert probe(sorted(env.videos)[2])[0] == 1  # the episode cut short by close()


def test_gymlab_record_captures_a_runtime_screen(tmp_path: Path) -> None:
    (tmp_path / "rt").mkdir()
    with running_runtime(tmp_path / "rt", mode="realtime", fps=30) as rt:
        out = tmp_path / "screen.mp4"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "gymlab.cli",
                "record",
                f"vnc://127.0.0.1:{rt.vnc_port}+{rt.rewarder_port}",
                str(out),
                "--seconds",
                "2",
                "--fps",
                "10",
                "--password-file",
                str(tmp_path / "rt" / "password"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "wrote 20 frames" in result.stdout
        bad = subprocess.run(
            [
                sys.executable,
                "-m",
                "gymlab.cli",
                "record",
                f"vnc://127.0.0.1:{rt.vnc_port}+{rt.rewarder_port}?password=wrong",
                str(tmp_path / "no.mp4"),
                "--seconds",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        # a venv without the record extra: the system ffmpeg on PATH records instead
        shimmed = tmp_path / "shimmed.mp4"
        without_extra = subprocess.run(
            [sys.executable, "-c", CLI_SHIM, "record",
             f"vnc://127.0.0.1:{rt.vnc_port}+{rt.rewarder_port}", str(shimmed),
             "--seconds", "1", "--fps", "10", "--password-file", str(tmp_path / "rt" / "password")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert without_extra.returncode == 0, without_extra.stderr
    assert probe(shimmed) == (10, 600, 400)
    frames, width, height = probe(out)
    assert (frames, width, height) == (20, 600, 400)
    assert middle_frame(out, width, height, frames).std() > 5
    assert bad.returncode == 1 and "gymlab record: error:" in bad.stderr
    assert "wrong" not in bad.stderr  # the password is never echoed


#: ``gymlab`` as on a venv without the record extra (imageio_ffmpeg cannot be imported).
CLI_SHIM = """
import sys
sys.modules["imageio_ffmpeg"] = None
from gymlab.cli import main
sys.exit(main(sys.argv[1:]))
"""

FFMPEG_SHIM = """
import sys
sys.modules["imageio_ffmpeg"] = None  # as on a venv without the record extra
import numpy as np
from gymlab.recording import Mp4Writer
writer = Mp4Writer(sys.argv[1], 6, 4, 10)
for i in range(5):
    writer.write(np.full((4, 6, 3), 40 * i, np.uint8))
writer.close()
"""


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_without_imageio_ffmpeg_the_system_ffmpeg_records(tmp_path: Path) -> None:
    out = tmp_path / "shim.mp4"
    run = subprocess.run([sys.executable, "-c", FFMPEG_SHIM, str(out)], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert probe(out)[:3] == (5, 6, 4)


def test_without_any_ffmpeg_the_error_says_what_to_install(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no ffmpeg on PATH
    run = subprocess.run([sys.executable, "-c", FFMPEG_SHIM, str(tmp_path / "x.mp4")],
                         capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert run.returncode != 0
    assert (
        "gymlab record needs ffmpeg: pip install 'gymlab[record]' or install ffmpeg"
        in run.stderr.strip().splitlines()[-1]
    )


WRAPPER_SHIM = """
import sys
sys.modules["imageio_ffmpeg"] = None
from gymlab.client import RemoteVectorEnv
from gymlab.wrappers import RecordEpisodes
RecordEpisodes(RemoteVectorEnv(), sys.argv[1])  # fails here, before any episode
"""


def test_without_any_ffmpeg_gymlab_record_and_record_episodes_say_it_in_one_line(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no ffmpeg on PATH, no imageio_ffmpeg
    # nothing listens on port 1: the ffmpeg check comes before any connection attempt
    cli = subprocess.run([sys.executable, "-c", CLI_SHIM, "record", "vnc://127.0.0.1:1+2",
                          str(tmp_path / "x.mp4")],
                         capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert cli.returncode == 1
    assert cli.stderr.splitlines() == [
        "gymlab record needs ffmpeg: pip install 'gymlab[record]' or install ffmpeg"
    ]
    wrapper = subprocess.run([sys.executable, "-c", WRAPPER_SHIM, str(tmp_path / "videos")],
                             capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert wrapper.returncode != 0
    assert wrapper.stderr.strip().splitlines()[-1] == (
        "gymlab.recording.FfmpegMissing: "
        "gymlab record needs ffmpeg: pip install 'gymlab[record]' or install ffmpeg"
    )
    assert not (tmp_path / "videos").exists()
