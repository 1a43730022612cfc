"""Smoke test of `gymlab bench --quick`: it runs and prints every row (no timing assertions)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("Xvnc") is None, reason="TigerVNC Xvnc is not installed"),
]

ROWS = [
    "in-process CartPole + render()",
    "1 remote, lockstep, pixels over VNC",
    "4 remotes, lockstep, RemoteVectorEnv",
    "Gymnasium AsyncVectorEnv(4), pixel observations",
    "4 lockstep remotes as a ratio of it",
    "4 remotes realtime: runtime ticks/s",
    "frames that changed the picture /s",
    "client VNC updates/s per remote",
    "observation lag p50 / p95 (ms)",
    "reward lag p50 / p95 (ms)",
    "bytes per lockstep step, ZRLE",
    "bytes per lockstep step, Raw",
    "ZRLE: steps/s; CPU ms per step runtime / Xvnc / client",
    "Raw: steps/s; CPU ms per step runtime / Xvnc / client",
    "RSS of one runtime (process + Xvnc)",
    "client RSS growth per remote",
    "in-process: env step / render()",
    "1 remote, CPU ms per env step: runtime / Xvnc / client",
    "4 remotes, CPU ms per env step: runtime / Xvnc / client",
    "client decode capacity, 600x400 CartPole stream",
    "client decode capacity, 1024x768 CartPole stream",
    "MiniWoB++ in-process (Selenium)",
    "browser runtime, lockstep: episodes",
    "browser runtime, real time (VNC clicks): episodes",
]


def test_quick_bench_prints_every_row_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gymlab.cli",
            "bench",
            "--quick",
            "--seconds",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ROWS:
        assert row in result.stdout, f"missing row {row!r}:\n{result.stdout}"
    data = json.loads(out.read_text())
    assert {"a", "b", "c", "d", "e", "f"} <= {row["key"] for row in data["rows"]}
    assert data["a"]["steps"] > 0 and data["b"]["vector_steps"] > 0
    assert data["c"]["errors"] == 0 and data["c"]["vector_steps"] > 0
    assert len(data["d"]["runtime_fps"]) == 4 and data["d"]["updates_total"] > 0
    assert all(0 < n <= 61 for n in data["d"]["changed_frames_per_s"]), data["d"]
    assert data["e"]["raw"] > data["e"]["zrle"] > 0
    for encoding in ("zrle", "raw"):
        assert data["e"][f"{encoding}_steps_per_s"] > 0
        assert set(data["e"][f"{encoding}_cpu_ms_per_step"]) == {"runtime", "xvnc", "client"}
    assert data["c"]["runtime_rss"] > 0
    for section in ("b", "c"):  # CPU clocks tick at 100 Hz: a 1 s run sees the busy ones
        cpu = data[section]["cpu_ms_per_step"]
        assert set(cpu) == {"runtime", "xvnc", "client"} and cpu["runtime"] > 0, cpu
    assert data["c_async"]["env_steps"] > 0
    for stream in data["h"].values():
        assert stream["updates"] > 0 and stream["decoded_updates_per_s"] > 0
    web = data["g"]  # the browser runtime's parts are installed by ./lab
    assert web["lockstep"]["episodes_per_s"] > 0 and web["realtime"]["episodes_per_s"] > 0
    assert web["inprocess"]["success"] > 0.5 and web["lockstep"]["success"] > 0.5


def test_bench_rejects_bad_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gymlab.cli", "bench", "--seconds", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--seconds must be positive" in result.stderr
