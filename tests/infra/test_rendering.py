"""Rendering works on the host: Xvfb answers, Gym renders frames and windows, ffmpeg records.

Each check looks at pixels or frame counts, not at files existing.
"""

from __future__ import annotations

import io
import json

import numpy as np
import probe_kit
from conftest import role_fact
from PIL import Image

TIMEOUT = "timeout 120"


def on_display(display: int, command: str) -> str:
    return f"DISPLAY=:{display} {TIMEOUT} {command}"


def test_xvfb_unit_active_and_display_answers(host, display):
    assert host.service(f"xvfb@{display}").is_running
    assert host.service(f"xvfb@{display}").is_enabled
    info = host.check_output(f"xdpyinfo -display :{display}")
    assert f"name of display:    :{display}" in info
    assert "GLX" in info


def test_the_fact_records_the_running_displays(host, display):
    """ansible_local.headless_display names exactly the displays that run, the exported one
    among them, with their geometry."""
    fact = role_fact(host, "headless_display")
    assert display in fact["displays"]
    running = host.check_output(
        "systemctl list-units --state=running --plain --no-legend 'xvfb@*.service'"
    )
    numbers = sorted(int(line.split("@")[1].split(".")[0]) for line in running.splitlines())
    assert numbers == sorted(fact["displays"])
    width, height, _ = (int(x) for x in fact["screen"].split("x"))
    info = host.check_output(f"xdpyinfo -display :{display}")
    assert f"dimensions:    {width}x{height} pixels" in info


def test_glx_renders_with_mesa(host, display):
    out = host.check_output(on_display(display, "glxinfo -B"))
    assert "direct rendering: Yes" in out
    assert "OpenGL renderer string" in out


def test_display_exported_to_login_shells_and_services(host, display):
    assert host.check_output("env -u DISPLAY bash -lc 'echo $DISPLAY'") == f":{display}"
    assert f"DISPLAY=:{display}" in host.check_output("systemctl show-environment").split()


def test_cartpole_rgb_array_frame(host, display, probe):
    out = host.check_output(
        on_display(display, f"{probe_kit.python()} {probe_kit.script('render_frame.py')}")
    )
    frame = json.loads(out.strip().splitlines()[-1])
    assert frame["shape"] == [400, 600, 3]
    assert frame["colours"] > 1, "the frame is one flat colour"


def test_pyglet_era_gym_needs_the_display(host, display, probe):
    """Without DISPLAY, pyglet-era Gym fails the way users know; the role's display fixes it."""
    if probe.name != "gym-pyglet":
        import pytest

        pytest.skip("Gymnasium renders rgb_array without an X display (pygame offscreen)")
    cmd = f"env -u DISPLAY {TIMEOUT} {probe_kit.python()} {probe_kit.script('render_frame.py')}"
    result = host.run(cmd)
    assert result.rc != 0
    assert "NoSuchDisplayException" in result.stderr or "Cannot connect" in result.stderr


def _png_from_host(host, path: str) -> np.ndarray:
    data = host.file(path).content
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _cart_visible(shot: np.ndarray) -> bool:
    """The pole (tan) is on screen with the black cart right under it."""
    tan = np.all(np.abs(shot.astype(int) - (203, 152, 101)) <= 12, axis=-1)
    ys, xs = np.nonzero(tan)
    if len(xs) < 100:
        return False
    centre, base = int(xs.mean()), int(ys.max())
    below = shot[base : base + 40, max(centre - 30, 0) : centre + 30]
    black = np.all(below < 30, axis=-1)
    return int(black.sum()) >= 500


def test_window_screenshot_shows_the_cart(host, display, probe):
    shot = "/tmp/gymlab-shot"
    host.check_output(
        on_display(
            display,
            f"sh -c '{probe_kit.python()} {probe_kit.script('draw_window.py')} 6 & "
            f"sleep 4; xwd -root -silent -display :{display} > {shot}.xwd; wait'",
        )
    )
    host.check_output(f"{TIMEOUT} ffmpeg -loglevel error -y -i {shot}.xwd {shot}.png")
    pixels = _png_from_host(host, f"{shot}.png")
    assert _cart_visible(pixels), "no cart-pole in the screenshot of the display"


def test_ffmpeg_records_the_display(host, display, probe):
    video = "/tmp/gymlab-record.mp4"
    width, height = host.check_output(
        f"xdpyinfo -display :{display} | awk '/dimensions:/{{print $2}}'"
    ).split("x")
    frames = 30
    host.check_output(
        on_display(
            display,
            f"sh -c '{probe_kit.python()} {probe_kit.script('draw_window.py')} 6 & sleep 1; "
            f"ffmpeg -loglevel error -y -f x11grab -video_size {width}x{height} -framerate 15 "
            f"-i :{display} -frames:v {frames} -pix_fmt yuv420p {video}; wait'",
        )
    )
    probe_out = host.check_output(
        f"ffprobe -v error -count_frames -select_streams v:0 "
        f"-show_entries stream=nb_read_frames,width,height -of json {video}"
    )
    stream = json.loads(probe_out)["streams"][0]
    assert int(stream["nb_read_frames"]) == frames
    assert (stream["width"], stream["height"]) == (int(width), int(height))
