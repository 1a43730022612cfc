# Copyright (c) 2026 gymlab contributors; MIT License (see LICENSE in the collection)
"""Ansible callback: write the first failed task (host, task, message) as JSON to a file.

The invoke tasks read it to end a failed run with one line that says what failed, while the
normal Ansible output still streams as progress.
"""

from __future__ import annotations

DOCUMENTATION = """
name: gymlab_failure
type: aggregate
short_description: record the first failure for gymlab's one-line summary
description: Writes host, task and message of the first failed task to $GYMLAB_FAILURE_FILE.
requirements: [GYMLAB_FAILURE_FILE set in the environment]
"""

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "gymlab_failure"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("GYMLAB_FAILURE_FILE")
        self._written = False

    def _record(self, result, msg: str) -> None:
        if self._written or not self._path:
            return
        self._written = True
        if result._task.action.endswith("gymlab_preflight"):
            text = str(msg)  # one line per bad value: the lines are the message
        else:
            text = " ".join(str(msg).split())[:500]
        with open(self._path, "w", encoding="utf-8") as out:
            json.dump({"host": result._host.get_name(), "task": result._task.get_name(),
                       "msg": text}, out)  # fmt: skip

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not ignore_errors:
            self._record(result, result._result.get("msg", "failed"))

    def v2_runner_on_unreachable(self, result):
        self._record(result, result._result.get("msg", "unreachable"))
