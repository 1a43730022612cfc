"""The page `invoke verify` writes: each host's checks by layer, its GPU facts, and a current
screenshot of every runtime it serves, in one self-contained HTML file (images inline)."""

from __future__ import annotations

import asyncio
import base64
import html
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gymlab.client.remotes import Remote
from gymlab.lab.report import Case

#: testinfra module -> the layer its checks prove (tests/infra/test_*.py)
LAYERS = {
    "test_gpu": "GPU stack",
    "test_container_runtime": "container runtime",
    "test_envs": "environment profiles",
    "test_envs_conda": "environment profiles",
    "test_jupyter": "environment profiles",
    "test_rendering": "headless display",
    "test_runtimes": "runtimes",
    "test_lab": "lab",
    "test_check_mode": "check mode",
}
SCREENSHOT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Screenshot:
    """One runtime's display now: PNG bytes, or why there is none."""

    remote: Remote
    png: bytes | None = None
    error: str = ""


@dataclass
class HostReport:
    name: str
    cases: Sequence[Case]
    gpu_facts: str = ""  # nvidia-smi's answer, or "" when the host has no GPU tools
    screenshots: Sequence[Screenshot] = field(default_factory=list)


def layer_of(case: Case) -> str:
    module = case.name.split("::")[0]
    return LAYERS.get(module, module)


async def _grab(remote: Remote, password: str | None, timeout: float) -> Screenshot:
    from PIL import Image

    from gymlab.client.vnc import VNCConnection, VNCError

    try:
        # shared: an agent playing this runtime keeps its connection
        conn = await VNCConnection.connect(
            remote.host, remote.vnc_port, password, timeout=timeout, shared=True
        )
        try:
            frame = await conn.update(incremental=False, timeout=timeout)
        finally:
            await conn.close()
    except VNCError as exc:  # it names the address and the reason
        return Screenshot(remote, error=str(exc))
    except OSError as exc:
        return Screenshot(remote, error=f"VNC {remote.host}:{remote.vnc_port}: {exc}")
    out = io.BytesIO()
    Image.fromarray(frame).save(out, format="PNG")
    return Screenshot(remote, png=out.getvalue())


def screenshots(
    remotes: Iterable[Remote], password: str | None, timeout: float = SCREENSHOT_TIMEOUT
) -> list[Screenshot]:
    """A screenshot of every remote, taken concurrently over VNC (a shared viewer)."""

    async def grab_all() -> list[Screenshot]:
        return list(await asyncio.gather(*(_grab(r, password, timeout) for r in remotes)))

    return asyncio.run(grab_all())


STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
h2 { border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin-bottom: 1em; }
td, th { padding: 2px 8px; text-align: left; vertical-align: top; }
.passed { color: #17702b; } .failed { color: #b00020; font-weight: bold; } .skipped { color: #777; }
figure { display: inline-block; margin: 0 1em 1em 0; } img { border: 1px solid #999; }
pre { background: #f4f4f4; padding: 0.5em; }
"""


def _host_section(host: HostReport) -> str:
    e = html.escape
    counts = {o: sum(c.outcome == o for c in host.cases) for o in ("passed", "failed", "skipped")}
    parts = [
        f'<section class="host" id="host-{e(host.name)}"><h2>{e(host.name)}</h2>',
        "<p>" + ", ".join(f'<span class="{o}">{n} {o}</span>' for o, n in counts.items()) + "</p>",
    ]
    layers: dict[str, list[Case]] = {}
    for case in host.cases:
        layers.setdefault(layer_of(case), []).append(case)
    for layer, cases in layers.items():
        rows = "".join(
            f'<tr><td>{e(c.name.split("::", 1)[-1])}</td><td class="{c.outcome}">{c.outcome}</td>'
            f"<td>{e(c.detail)}</td></tr>"
            for c in cases
        )
        parts.append(f'<h3 class="layer">{e(layer)}</h3><table>{rows}</table>')
    gpu = e(host.gpu_facts) if host.gpu_facts else "no GPU tools on this host"
    parts.append(f'<h3>GPU</h3><pre class="gpu">{gpu}</pre>')
    parts.append("<h3>Runtimes</h3>")
    if not host.screenshots:
        parts.append("<p>no runtimes on this host</p>")
    for shot in host.screenshots:
        label = e(f"{shot.remote.host}:{shot.remote.vnc_port}")
        if shot.png:
            data = base64.b64encode(shot.png).decode()
            body = f'<img class="screenshot" alt="{label}" src="data:image/png;base64,{data}">'
        else:
            body = f'<p class="failed">no screenshot: {e(shot.error)}</p>'
        parts.append(f"<figure>{body}<figcaption>{label}</figcaption></figure>")
    parts.append("</section>")
    return "\n".join(parts)


def render(title: str, hosts: Sequence[HostReport]) -> str:
    """The whole page: one section per host."""
    sections = "\n".join(_host_section(h) for h in hosts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>\n{sections}\n</body></html>\n"
    )
