#!/usr/bin/python
# Copyright (c) 2026 gymlab contributors; MIT License (see LICENSE in the collection)
"""Documentation of the gymlab_preflight action (it runs on the controller: plugins/action)."""

# ansible-core 2.16's sanity test still asks every module for this boilerplate
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gymlab_preflight
short_description: Check inventory variables against the gymlab roles' argument specs
description:
  - Runs on the controller only and contacts no host.
  - Every variable named after a gymlab role (C(gym_runtime_*), C(cuda_*), ...) is validated
    against that role's C(meta/argument_specs.yml); a role-prefixed name the role does not take,
    or a name close to a known one, is reported as a typo.
  - Fails with one line per bad value (host, variable, value, what was expected).
  - Sets the fact C(gymlab_preflight_passed).
options:
  hosts:
    description: Hosts to check; default the play's hosts (C(ansible_play_hosts_all)).
    type: list
    elements: str
author: gymlab maintainers (@gymlab)
"""

EXAMPLES = r"""
- name: Check the inventory before touching hosts
  gymlab.lab.gymlab_preflight:
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
ansible_facts:
  description: C(gymlab_preflight_passed) true when every value fits.
  returned: on success
  type: dict
"""
