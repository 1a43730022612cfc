#!/usr/bin/python
# Copyright (c) 2026 gymlab contributors; MIT License (see LICENSE in the collection)
# Runs on the managed host: keep it Python 3.6 compatible (Ubuntu 18.04).
"""Merge settings into Docker's daemon.json key by key (the container_runtime role's module)."""

# ansible-core 2.16's sanity test still asks every module for this boilerplate
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: container_runtime_daemon_json
short_description: Merge settings into Docker's daemon.json, keeping every key it does not own
description:
  - Reads the existing file (a missing or blank file counts as C({})), merges O(settings) into
    it (objects recursively, other values replaced), deletes the top-level keys in O(remove),
    and writes it back only when the result differs in content.
  - A file that is not a JSON object fails the task and is left untouched.
  - Supports check mode and diff.
options:
  path:
    description: The daemon configuration file.
    type: path
    default: /etc/docker/daemon.json
  settings:
    description: Keys the caller owns, with their values.
    type: dict
    default: {}
  remove:
    description: Top-level keys the caller owns and wants gone.
    type: list
    elements: str
    default: []
author: gymlab maintainers (@gymlab)
"""

EXAMPLES = r"""
- name: Remap container root and register the nvidia runtime, keeping every other key
  gymlab.lab.container_runtime_daemon_json:
    settings:
      userns-remap: dockremap
      runtimes:
        nvidia:
          path: nvidia-container-runtime
    remove: [default-runtime]
  register: daemon_json
"""

RETURN = r"""
config:
  description: The merged configuration.
  type: dict
  returned: always
changed_keys:
  description: Top-level keys whose value was added, changed or removed.
  type: list
  returned: always
"""

import copy
import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

_ABSENT = object()


class DaemonJsonError(ValueError):
    """The existing daemon.json cannot be merged safely."""


def parse(text, path="daemon.json"):
    """The configuration in ``text``; blank text is an empty configuration."""
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
    except ValueError as exc:
        where = ""
        if hasattr(exc, "lineno"):
            where = f" at line {exc.lineno} column {exc.colno}"
        raise DaemonJsonError(
            f"{path} is not valid JSON ({getattr(exc, 'msg', str(exc))}{where}); left untouched: "
            "fix or remove it, then run again"
        ) from None
    if not isinstance(config, dict):
        raise DaemonJsonError(
            f"{path} holds a JSON {type(config).__name__}, not an object; left untouched: "
            "fix or remove it, then run again"
        )
    return config


def deep_merge(current, settings):
    """``current`` with ``settings`` merged in: objects recursively, anything else replaced."""
    merged = copy.deepcopy(current)
    for key, value in settings.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def merge(current, settings, remove=()):
    """(merged config, sorted top-level keys that changed)."""
    merged = deep_merge(current, settings)
    for key in remove:
        merged.pop(key, None)
    keys = set(current) | set(merged)
    changed = sorted(k for k in keys if current.get(k, _ABSENT) != merged.get(k, _ABSENT))
    return merged, changed


def render(config):
    """The file content Docker reads; stable for a given key order."""
    return json.dumps(config, indent=2, ensure_ascii=False) + "\n"


def merge_text(text, settings, remove=(), path="daemon.json"):
    """(new file text, changed keys); the text is ``text`` itself when nothing changed."""
    current = parse(text, path)
    merged, changed = merge(current, settings, remove)
    if not changed:
        return text, []
    return render(merged), changed


def _write(module, path, content):
    """Atomic replace; keeps the mode and owner of an existing file, 0644 for a new one."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".daemon.json.", dir=directory)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    existed = os.path.exists(path)
    module.atomic_move(tmp, path)
    if not existed:
        os.chmod(path, 0o644)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/docker/daemon.json"),
            settings=dict(type="dict", default={}),
            remove=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    if not os.path.isdir(os.path.dirname(path) or "."):
        module.fail_json(msg=f"{path}: its directory does not exist")
    before = ""
    if os.path.exists(path):
        with open(path) as handle:
            before = handle.read()
    try:
        after, changed = merge_text(
            before, module.params["settings"], module.params["remove"], path
        )
    except DaemonJsonError as exc:
        module.fail_json(msg=str(exc))
    result = dict(changed=bool(changed), changed_keys=changed, config=parse(after, path))
    if changed:
        result["diff"] = dict(before=before, after=after, before_header=path, after_header=path)
        if not module.check_mode:
            _write(module, path, after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
