"""End-to-end: the HTML page `invoke verify` writes, with real runtimes' screenshots over VNC,
rendered by a real headless Chromium (gymlab.lab.html_report)."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image

from gymlab.client.remotes import Remote
from gymlab.lab.html_report import HostReport, render, screenshots
from gymlab.lab.report import Case
from gymlab.procfs import free_port
from gymlab.supervisor import local_runtimes

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("Xvnc") is None, reason="TigerVNC Xvnc is not installed"),
    pytest.mark.skipif(
        shutil.which("chromedriver") is None, reason="Debian's chromium-driver is not installed"
    ),
]

CASES = [
    Case("test_rendering::test_xvfb_serves_the_display", "passed"),
    Case(
        "test_runtimes::test_every_runtime_answers",
        "failed",
        "AssertionError: 1 != 2",
        "AssertionError: 1 != 2\ntests/infra/test_runtimes.py:99: in test_every_runtime_answers",
    ),
    Case("test_gpu::test_nvidia_smi_sees_the_gpu", "skipped", "no GPU in this host"),
    Case("test_envs::test_lock_installed[modern]", "skipped", "profile modern is not installed"),
    Case("test_envs::test_lock_installed[legacy-cuda9]", "passed"),
]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with local_runtimes(2) as runtimes:
        remotes = [Remote("127.0.0.1", rt.vnc_port, rt.rewarder_port) for rt in runtimes]
        dead = Remote("127.0.0.1", free_port(), free_port())
        shots = screenshots([*remotes, dead], runtimes[0].password, timeout=5)
    hosts = [
        HostReport("rt01", CASES, "name, driver_version\nNVIDIA H200, 560.35", shots),
        HostReport("notebook01", CASES[:1]),
    ]
    path = tmp_path_factory.mktemp("report") / "verify.html"
    path.write_text(render("gymlab verify: rt01, notebook01", hosts))
    return path, shots


def test_every_runtime_is_shot_and_an_unreachable_one_says_why(page):
    _, shots = page
    live, dead = shots[:2], shots[2]
    for shot in live:
        frame = np.asarray(Image.open(io.BytesIO(shot.png)))
        assert frame.shape == (400, 600, 3)  # CartPole's display
        assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 2  # the cart and pole are drawn
    assert dead.png is None
    assert dead.error.startswith(f"VNC 127.0.0.1:{dead.remote.vnc_port}: cannot connect")


def test_the_page_renders_in_headless_chromium(page):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    path, _ = page
    options = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(path.as_uri())
        images = driver.execute_script(
            "return [...document.querySelectorAll('#host-rt01 img.screenshot')]"
            ".map(i => [i.complete, i.naturalWidth, i.naturalHeight]);"
        )
        assert images == [[True, 600, 400], [True, 600, 400]]
        layers = driver.execute_script(
            "return [...document.querySelectorAll('#host-rt01 table.layers tr')].slice(1)"
            ".map(r => [...r.cells].map(c => c.textContent));"
        )
        assert layers == [
            ["headless display", "1", "0", "0"],
            ["runtimes", "0", "1", "0"],
            ["GPU stack", "0", "0", "1"],
            ["environment profiles", "1", "0", "1"],
        ]
        text = driver.find_element("id", "host-rt01").text
        assert "2 passed, 1 failed, 2 skipped" in text
        assert "NVIDIA H200" in text and "no screenshot: VNC 127.0.0.1:" in text
        # the failure with its whole message comes before the passed and skipped checks
        failures = driver.find_element("css selector", "#host-rt01 .failures").text
        assert "runtimes: test_every_runtime_answers" in failures
        assert "test_runtimes.py:99" in failures
        assert text.index("test_runtimes.py:99") < text.index("Passed, by layer")
        # skipped checks folded under their reason, parametrized ones named with the parameter
        reasons = driver.execute_script(
            "return [...document.querySelectorAll('#host-rt01 details.skip-reason')]"
            ".map(d => [d.open, d.querySelector('summary').textContent, d.textContent]);"
        )
        assert [(o, summary) for o, summary, _ in reasons] == [
            (False, "1 skipped: no GPU in this host"),
            (False, "1 skipped: profile modern is not installed"),
        ]
        assert "environment profiles: test_lock_installed[modern]" in reasons[1][2]
        other = driver.find_element("id", "host-notebook01").text
        assert "no runtimes on this host" in other and "no GPU tools on this host" in other
    finally:
        driver.quit()
