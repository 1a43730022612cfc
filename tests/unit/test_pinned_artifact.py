"""gymlab.lab.pinned_artifact, the roles' one sha256-pinned fetch, run as the roles run it (by
FQCN, through the repository's ansible.cfg) against localhost: a file from the control machine
(src) and one downloaded on the host (a file:// URL)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CONTENT = b"a pinned artifact\n"
PIN = hashlib.sha256(CONTENT).hexdigest()
WRONG = "0" * 64


def run_task(tmp_path: Path, args: dict, check: bool = False) -> dict:
    """Run one pinned_artifact task on localhost; return its registered result."""
    out = tmp_path / "result.json"
    playbook = tmp_path / "play.yml"
    task = {"gymlab.lab.pinned_artifact": args, "register": "r", "ignore_errors": True}
    save = {"ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": str(out)},
            "check_mode": False}  # fmt: skip
    play = {"hosts": "localhost", "connection": "local", "gather_facts": False,
            "tasks": [task, save]}  # fmt: skip
    playbook.write_text(json.dumps([play]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(playbook),
            "-e", f"ansible_python_interpreter={sys.executable}"]  # fmt: skip
    if check:
        argv.append("--check")
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture
def artifact(tmp_path):
    source = tmp_path / "store" / "tool.run"
    source.parent.mkdir()
    source.write_bytes(CONTENT)
    (tmp_path / "host").mkdir()
    return source


@pytest.mark.parametrize("kind", ["src", "url"])
def test_fetches_verifies_and_then_leaves_the_file_alone(tmp_path, artifact, kind):
    dest = tmp_path / "host" / "tool.run"
    args = {"dest": str(dest), "sha256": PIN, "mode": "0600"}
    args[kind] = str(artifact) if kind == "src" else artifact.as_uri()
    first = run_task(tmp_path, args)
    assert first["changed"] and not first.get("failed"), first
    assert dest.read_bytes() == CONTENT and dest.stat().st_mode & 0o777 == 0o600
    assert not run_task(tmp_path, args)["changed"]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["tool.run"]  # no temporary left


@pytest.mark.parametrize("kind", ["src", "url"])
def test_a_wrong_digest_fails_in_one_line_and_puts_nothing_in_place(tmp_path, artifact, kind):
    dest = tmp_path / "host" / "tool.run"
    source = str(artifact) if kind == "src" else artifact.as_uri()
    result = run_task(tmp_path, {kind: source, "dest": str(dest), "sha256": WRONG})
    assert result["failed"]
    assert (
        result["msg"]
        == f"{source}: sha256 {PIN} does not match the pinned {WRONG}; not put in place"
    )
    assert list(dest.parent.iterdir()) == []


def test_a_file_already_there_with_another_digest_is_replaced(tmp_path, artifact):
    dest = tmp_path / "host" / "tool.run"
    dest.write_bytes(b"an older download\n")
    result = run_task(tmp_path, {"url": artifact.as_uri(), "dest": str(dest), "sha256": PIN})
    assert result["changed"] and dest.read_bytes() == CONTENT


def test_check_mode_reports_the_change_and_makes_none(tmp_path, artifact):
    dest = tmp_path / "host" / "tool.run"
    for kind, source in (("src", str(artifact)), ("url", artifact.as_uri())):
        result = run_task(tmp_path, {kind: source, "dest": str(dest), "sha256": PIN}, check=True)
        assert result["changed"] and not result.get("failed"), result
    assert not dest.exists()


def test_a_malformed_pin_is_refused(tmp_path, artifact):
    result = run_task(
        tmp_path, {"src": str(artifact), "dest": str(tmp_path / "host" / "x"), "sha256": "abc"}
    )
    assert result["failed"] and "is not 64 hex digits" in result["msg"]
