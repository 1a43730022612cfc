#!/usr/bin/python
# Copyright (c) 2026 gymlab contributors; MIT License (see LICENSE in the collection)
# Runs on the managed host: keep it Python 3.6 compatible (Ubuntu 18.04).
"""Put one sha256-pinned file in place (the roles' one artifact fetch; see the action plugin)."""

# ansible-core 2.16's sanity test still asks every module for this boilerplate
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pinned_artifact
short_description: Fetch one file pinned by sha256, verify it, move it into place atomically
description:
  - Brings O(dest) to the content whose sha256 is O(sha256), from O(url) (downloaded on the
    managed host; C(http), C(https), C(ftp) or C(file) URLs) or from O(src), a file on the
    control machine (the action plugin checks it there, copies it over, and the host checks
    it again).
  - The content goes to a temporary file next to O(dest) and is renamed over O(dest) only after
    its sha256 matched, so O(dest) is always either the old file or the verified new one.
  - A O(dest) that already has the pinned sha256 is left alone (only O(owner), O(group) and
    O(mode) are corrected), so runs after the first transfer nothing.
  - A mismatch fails the task with one line naming the source, the pinned and the actual
    sha256, and leaves O(dest) untouched.
  - Without O(mode) a new O(dest) gets mode C(0644).
  - Supports check mode (nothing is downloaded or copied; C(changed) says whether it would be).
options:
  url:
    description: Where the host downloads the file from. Exactly one of O(url) and O(src).
    type: str
  src:
    description:
      - A file on the control machine (a relative path is looked up in the role's C(files/)).
        Exactly one of O(url) and O(src).
    type: path
  dest:
    description: Where the file goes on the host; its directory must exist.
    type: path
    required: true
  sha256:
    description: The pinned sha256 of the file, 64 hex digits.
    type: str
    required: true
  timeout:
    description: Seconds a download may stall before it fails.
    type: int
    default: 30
  _source:
    description:
      - Internal, set by the action plugin for O(src) copies - the control-machine path the
        content came from, named in messages instead of the temporary copy on the host.
    type: str
  _probe:
    description:
      - Internal, set by the action plugin - only report whether O(dest) already has the pinned
        content (RV(needs_content)), transfer nothing.
    type: bool
    default: false
extends_documentation_fragment:
  # owner, group, mode, the SELinux context, attributes: O(dest)'s, via add_file_common_args
  - ansible.builtin.files
author: gymlab maintainers (@gymlab)
"""

EXAMPLES = r"""
- name: Fetch the CUDA installer from the lab's artifact store
  gymlab.lab.pinned_artifact:
    url: https://artifacts.lab.example/nvidia/cuda_9.0.176_384.81_linux-run
    dest: /var/cache/gymlab/cuda/cuda_9.0.176_384.81_linux-run
    sha256: 96863423feaa50b5c1c5e1b9ec537ef7ba77576a3986652351ae43e66bcd080c
    mode: "0600"

- name: Copy a package from the lab artifact directory on the control machine
  gymlab.lab.pinned_artifact:
    src: /srv/lab-artifacts/nvidia/libnvidia-container1_1.14.3-1_amd64.deb
    dest: /var/cache/gymlab/libnvidia-container1_1.14.3-1_amd64.deb
    sha256: "{{ pins['libnvidia-container1_1.14.3-1_amd64.deb'] }}"
"""

RETURN = r"""
sha256:
  description: The sha256 of O(dest) (the pinned one) after the task.
  returned: success
  type: str
source:
  description: The URL or control-machine path the content came from (or would come from).
  returned: always
  type: str
needs_content:
  description: True when O(_probe) found O(dest) without the pinned content.
  returned: when O(_probe) is set, not in check mode, and O(dest) lacks the pinned content
  type: bool
"""

import hashlib
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import fetch_url

CHUNK = 1024 * 1024


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def mismatch(source, expected, actual):
    """The one-line failure every role reports (the GPU scenarios look for its wording)."""
    return f"{source}: sha256 {actual} does not match the pinned {expected}; not put in place"


def copy_hashing(reader, writer):
    digest = hashlib.sha256()
    for block in iter(lambda: reader.read(CHUNK), b""):
        digest.update(block)
        writer.write(block)
    return digest.hexdigest()


def stage(module, dest):
    """Write the content into a temporary file beside dest; return (temp path, sha256)."""
    params = module.params
    fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.", dir=os.path.dirname(dest))
    try:
        with os.fdopen(fd, "wb") as writer:
            if params["src"]:
                with open(params["src"], "rb") as reader:
                    actual = copy_hashing(reader, writer)
            else:
                response, info = fetch_url(module, params["url"], timeout=params["timeout"])
                if response is None or info.get("status") not in (200, None):
                    raise OSError(f"download failed: {info.get('msg', 'no response')}")
                actual = copy_hashing(response, writer)
    except BaseException:
        os.unlink(temp)
        raise
    return temp, actual


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str"),
            src=dict(type="path"),
            dest=dict(type="path", required=True),
            sha256=dict(type="str", required=True),
            timeout=dict(type="int", default=30),
            # set by the action plugin: the control-machine path src came from (for messages),
            # and a first call without content that only asks whether dest is already right
            _source=dict(type="str"),
            _probe=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("url", "src")],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    params = module.params
    dest = params["dest"]
    expected = params["sha256"].strip().lower()
    source = params["_source"] or params["src"] or params["url"]
    result = dict(changed=False, source=source)
    if not (source or params["_probe"]):
        module.fail_json(msg=f"{dest}: give url or src", **result)
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        pin = params["sha256"]
        module.fail_json(msg=f"{source}: the pinned sha256 {pin!r} is not 64 hex digits", **result)
    if not os.path.isdir(os.path.dirname(dest) or "."):
        module.fail_json(msg=f"{dest}: its directory does not exist", **result)

    if os.path.isfile(dest) and file_sha256(dest) == expected:
        file_args = module.load_file_common_arguments(params, path=dest)
        result["changed"] = module.set_fs_attributes_if_different(file_args, False)
        module.exit_json(sha256=expected, **result)
    if params["_probe"] and not module.check_mode:
        module.exit_json(needs_content=True, **result)  # a question: nothing changed yet
    result["changed"] = True  # from here on dest gets (or would get) new content
    if module.check_mode:
        module.exit_json(**result)

    try:
        temp, actual = stage(module, dest)
    except OSError as exc:
        module.fail_json(msg=f"{source}: {exc}", **result)
    if actual != expected:
        os.unlink(temp)
        module.fail_json(msg=mismatch(source, expected, actual), **result)
    try:
        file_args = module.load_file_common_arguments(params, path=temp)
        if file_args.get("mode") is None:
            file_args["mode"] = "0644"  # not mkstemp's 0600
        module.set_fs_attributes_if_different(file_args, False)
        os.rename(temp, dest)  # same directory: atomic
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    module.exit_json(sha256=expected, **result)


if __name__ == "__main__":
    main()
