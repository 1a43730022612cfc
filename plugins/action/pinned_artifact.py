"""Controller side of gymlab.lab.pinned_artifact (documented in plugins/modules/).

With ``url`` the host downloads and verifies by itself: the task goes to the module as it is.
With ``src`` (a file on the control machine) the file's sha256 is checked here first, so a wrong
file fails before anything is sent; then the module tells whether ``dest`` already has the pinned
content, and only when it has not (and not in check mode) is the file copied into the task's
temporary directory on the host, where the module verifies it again and renames it into place.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

MODULE = "gymlab.lab.pinned_artifact"
CHUNK = 1024 * 1024
PIN = re.compile("[0-9a-f]{64}")


def local_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp: str | None = None, task_vars: dict | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        try:
            result.update(self._run(dict(self._task.args), task_vars))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _run(self, args: dict[str, Any], task_vars: dict) -> dict[str, Any]:
        for internal in ("_source", "_probe"):
            args.pop(internal, None)
        if not args.get("src"):
            return self._execute_module(MODULE, module_args=args, task_vars=task_vars)
        if args.get("url"):
            return {"failed": True, "msg": f"{args['dest']}: give url or src, not both"}
        try:
            source = self._find_needle("files", args.pop("src"))
        except AnsibleError as exc:
            return {"failed": True, "msg": to_text(exc.message)}
        expected = to_text(args.get("sha256", "")).strip().lower()
        if not PIN.fullmatch(expected):
            return {"failed": True, "msg": f"{source}: the pinned sha256 {expected!r} is not 64 hex"
                    " digits", "source": source}  # fmt: skip
        actual = local_sha256(source)
        if actual != expected:
            # the module's wording, before anything goes to the host
            return {"failed": True, "source": source, "msg": f"{source}: sha256 {actual} does not"
                    f" match the pinned {expected}; not put in place"}  # fmt: skip

        probe = self._execute_module(
            MODULE, module_args={**args, "_source": source, "_probe": True}, task_vars=task_vars
        )
        if not probe.pop("needs_content", False):
            return probe  # already in place (or check mode, or a failure)
        remote = self._connection._shell.join_path(self._connection._shell.tmpdir, "content")
        self._transfer_file(source, remote)
        self._fixup_perms2((self._connection._shell.tmpdir, remote))
        return self._execute_module(
            MODULE, module_args={**args, "src": remote, "_source": source}, task_vars=task_vars
        )
