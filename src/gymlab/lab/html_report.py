"""The page `invoke verify` writes, one self-contained HTML file (images inline): for each host
its counts per layer, its failures with their messages, its GPU facts and a current screenshot
of every runtime it serves, then its passed checks by layer and its skipped ones by reason."""

from __future__ import annotations

import asyncio
import base64
import html
import io
from collections import Counter
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
td.n { text-align: right; }
.passed { color: #17702b; } .failed { color: #b00020; font-weight: bold; } .skipped { color: #777; }
.failure { border-left: 4px solid #b00020; padding-left: 0.5em; margin-bottom: 1em; }
figure { display: inline-block; margin: 0 1em 1em 0; } img { border: 1px solid #999; }
pre { background: #f4f4f4; padding: 0.5em; white-space: pre-wrap; }
details { margin: 0.3em 0; } summary { cursor: pointer; }
"""
OUTCOMES = ("passed", "failed", "skipped")


def _check(case: Case) -> str:
    """The check's name without its module (the layer says where it is), parameters kept."""
    return case.name.split("::", 1)[-1]


def _layer_table(cases: Sequence[Case]) -> str:
    """One row per layer with its counts: where a reader looks first."""
    e = html.escape
    counts: dict[str, Counter] = {}
    for case in cases:
        counts.setdefault(layer_of(case), Counter())[case.outcome] += 1
    head = "<tr><th>layer</th>" + "".join(f"<th>{o}</th>" for o in OUTCOMES) + "</tr>"
    rows = "".join(
        f"<tr><td>{e(layer)}</td>"
        + "".join(f'<td class="n {o if n[o] else ""}">{n[o]}</td>' for o in OUTCOMES)
        + "</tr>"
        for layer, n in counts.items()
    )
    return f'<table class="layers">{head}{rows}</table>'


def _failures(cases: Sequence[Case]) -> str:
    e = html.escape
    failed = [c for c in cases if c.outcome == "failed"]
    if not failed:
        return '<p class="passed">no failures</p>'
    return "".join(
        f'<div class="failure"><p class="failed">{e(layer_of(c))}: {e(_check(c))}</p>'
        f"<pre>{e(c.message or c.detail)}</pre></div>"
        for c in failed
    )


def _runtimes(shots: Sequence[Screenshot]) -> str:
    e = html.escape
    if not shots:
        return "<p>no runtimes on this host</p>"
    parts = []
    for shot in shots:
        label = e(f"{shot.remote.host}:{shot.remote.vnc_port}")
        if shot.png:
            data = base64.b64encode(shot.png).decode()
            body = f'<img class="screenshot" alt="{label}" src="data:image/png;base64,{data}">'
        else:
            body = f'<p class="failed">no screenshot: {e(shot.error)}</p>'
        parts.append(f"<figure>{body}<figcaption>{label}</figcaption></figure>")
    return "".join(parts)


def _passed_by_layer(cases: Sequence[Case]) -> str:
    e = html.escape
    layers: dict[str, list[Case]] = {}
    for case in cases:
        if case.outcome == "passed":
            layers.setdefault(layer_of(case), []).append(case)
    return "".join(
        f'<details class="layer"><summary><span class="layer-name">{e(layer)}</span>: '
        f'<span class="passed">{len(passed)} passed</span></summary><ul>'
        + "".join(f"<li>{e(_check(c))}</li>" for c in passed)
        + "</ul></details>"
        for layer, passed in layers.items()
    )


def _skipped_by_reason(cases: Sequence[Case]) -> str:
    e = html.escape
    reasons: dict[str, list[Case]] = {}
    for case in cases:
        if case.outcome == "skipped":
            reasons.setdefault(case.detail or "no reason given", []).append(case)
    return "".join(
        f'<details class="skip-reason"><summary><span class="skipped">{len(skipped)} skipped'
        f"</span>: {e(reason)}</summary><ul>"
        + "".join(f"<li>{e(layer_of(c))}: {e(_check(c))}</li>" for c in skipped)
        + "</ul></details>"
        for reason, skipped in sorted(reasons.items(), key=lambda item: -len(item[1]))
    )


def _host_section(host: HostReport) -> str:
    """Counts per layer, failures with their messages, the GPU facts and the runtimes'
    screenshots first; the passed checks by layer and the skipped ones by reason folded below."""
    e = html.escape
    counts = Counter(c.outcome for c in host.cases)
    gpu = e(host.gpu_facts) if host.gpu_facts else "no GPU tools on this host"
    return "\n".join(
        [
            f'<section class="host" id="host-{e(host.name)}"><h2>{e(host.name)}</h2>',
            '<p class="counts">'
            + ", ".join(
                f'<span class="{o if counts[o] else ""}">{counts[o]} {o}</span>' for o in OUTCOMES
            )
            + "</p>",
            _layer_table(host.cases),
            f'<h3>Failures</h3><div class="failures">{_failures(host.cases)}</div>',
            f'<h3>GPU</h3><pre class="gpu">{gpu}</pre>',
            f'<h3>Runtimes</h3><div class="runtimes">{_runtimes(host.screenshots)}</div>',
            f"<h3>Passed, by layer</h3>{_passed_by_layer(host.cases)}",
            f"<h3>Skipped, by reason</h3>{_skipped_by_reason(host.cases) or '<p>none</p>'}",
            "</section>",
        ]
    )


def render(title: str, hosts: Sequence[HostReport]) -> str:
    """The whole page: one section per host."""
    sections = "\n".join(_host_section(h) for h in hosts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>\n{sections}\n</body></html>\n"
    )
