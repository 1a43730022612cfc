"""container_runtime's daemon.json merge: pure functions, and the module run as Ansible does."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

MODULE_PATH = (
    Path(__file__).resolve().parents[2] / "plugins/modules/container_runtime_daemon_json.py"
)
_spec = importlib.util.spec_from_file_location("container_runtime_daemon_json", MODULE_PATH)
dj = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dj)

OWNED = {
    "userns-remap": "dockremap",
    "log-driver": "json-file",
    "log-opts": {"max-size": "50m", "max-file": "5"},
    "runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime", "args": []}},
}


def test_keys_the_role_does_not_own_survive():
    current = {"debug": True, "registry-mirrors": ["http://mirror.invalid"], "log-driver": "local"}
    merged, changed = dj.merge(current, OWNED)
    assert merged["debug"] is True
    assert merged["registry-mirrors"] == ["http://mirror.invalid"]
    assert merged["log-driver"] == "json-file"
    assert changed == ["log-driver", "log-opts", "runtimes", "userns-remap"]


def test_objects_merge_recursively_so_other_runtimes_and_log_opts_survive():
    current = {
        "runtimes": {"crun": {"path": "/usr/bin/crun"}},
        "log-opts": {"labels": "team", "max-size": "1m"},
    }
    merged, _ = dj.merge(current, OWNED)
    assert merged["runtimes"] == {
        "crun": {"path": "/usr/bin/crun"},
        "nvidia": {"path": "/usr/bin/nvidia-container-runtime", "args": []},
    }
    assert merged["log-opts"] == {"labels": "team", "max-size": "50m", "max-file": "5"}


def test_merge_does_not_mutate_its_inputs():
    current = {"runtimes": {"crun": {"path": "/usr/bin/crun"}}}
    settings = {"runtimes": {"nvidia": {"path": "x", "args": ["a"]}}}
    snapshot = json.dumps([current, settings])
    merged, _ = dj.merge(current, settings)
    merged["runtimes"]["nvidia"]["args"].append("b")
    assert json.dumps([current, settings]) == snapshot


def test_remove_deletes_only_the_named_top_level_keys():
    current = {"userns-remap": "dockremap", "debug": True}
    merged, changed = dj.merge(current, {}, remove=["userns-remap", "absent-key"])
    assert merged == {"debug": True}
    assert changed == ["userns-remap"]


def test_a_key_set_to_null_counts_as_present():
    merged, changed = dj.merge({"a": None}, {}, remove=["a"])
    assert merged == {} and changed == ["a"]


def test_unchanged_content_keeps_the_users_formatting():
    text = '{"debug":true,\n   "userns-remap": "dockremap"}'
    after, changed = dj.merge_text(text, {"userns-remap": "dockremap"})
    assert after is text
    assert changed == []


def test_changed_content_keeps_key_order_and_appends_new_keys():
    text = '{"debug": true, "log-driver": "local"}'
    after, _ = dj.merge_text(text, {"userns-remap": "dockremap", "log-driver": "json-file"})
    assert list(json.loads(after)) == ["debug", "log-driver", "userns-remap"]
    assert after.endswith("}\n")


def test_missing_or_blank_file_is_an_empty_configuration():
    after, changed = dj.merge_text(" \n", {"log-driver": "json-file"})
    assert json.loads(after) == {"log-driver": "json-file"}
    assert changed == ["log-driver"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"debug": true,', "is not valid JSON"),
        ("{'debug': true}", "line 1 column 2"),
        ('{"a": 1}\n{"b": 2}', "line 2 column 1"),
        ('["debug"]', "holds a JSON list, not an object"),
    ],
)
def test_invalid_files_are_refused_with_a_clear_message(text, fragment):
    with pytest.raises(dj.DaemonJsonError) as info:
        dj.merge_text(text, OWNED, path="/etc/docker/daemon.json")
    message = str(info.value)
    assert message.startswith("/etc/docker/daemon.json ")
    assert fragment in message
    assert "left untouched" in message


# --- the module, run the way Ansible runs it (arguments from a JSON file) ---------------------


def run_module(tmp_path: Path, check_mode: bool = False, **params) -> tuple[int, dict]:
    args = {
        "ANSIBLE_MODULE_ARGS": {**params, "_ansible_check_mode": check_mode, "_ansible_diff": True}
    }
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps(args))
    proc = subprocess.run(
        [sys.executable, str(MODULE_PATH), str(args_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_module_check_mode_reports_the_diff_and_writes_nothing(tmp_path):
    target = tmp_path / "daemon.json"
    target.write_text('{"debug": true}\n')
    before = sha256(target)
    rc, result = run_module(tmp_path, check_mode=True, path=str(target), settings=OWNED)
    assert rc == 0
    assert result["changed"] is True
    assert '"userns-remap": "dockremap"' in result["diff"]["after"]
    assert result["diff"]["before"] == '{"debug": true}\n'
    assert sha256(target) == before


def test_module_writes_once_then_reports_no_change(tmp_path):
    target = tmp_path / "daemon.json"
    rc, first = run_module(tmp_path, path=str(target), settings=OWNED)
    assert rc == 0 and first["changed"] is True
    assert json.loads(target.read_text()) == OWNED
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    rc, second = run_module(tmp_path, path=str(target), settings=OWNED)
    assert rc == 0 and second["changed"] is False
    assert "diff" not in second


def test_module_fails_on_broken_json_and_leaves_the_file_alone(tmp_path):
    target = tmp_path / "daemon.json"
    target.write_text('{"debug": true,,}')
    before = sha256(target)
    rc, result = run_module(tmp_path, path=str(target), settings=OWNED)
    assert rc != 0
    assert result["failed"] is True
    assert "is not valid JSON" in result["msg"]
    assert sha256(target) == before
    assert {p.name for p in tmp_path.iterdir()} == {"args.json", "daemon.json"}  # no temp file
