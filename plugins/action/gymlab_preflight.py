"""Check inventory variables against the roles' argument specs, on the controller only.

Each variable named after a role (``gym_runtime_*`` belongs to ``gym_runtime``) is validated
against that role's ``meta/argument_specs.yml``; a name with a role's prefix that the role does
not take, or one a letter or two away from a known name, is reported as a typo. The roles' own
tasks validate again when they run; this play runs first so that a lab with one bad value fails
in seconds, naming every bad value, before any host is contacted.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"
VALUE_WIDTH = 60


def load_specs(roles_dir: Path = ROLES_DIR) -> dict[str, dict[str, dict]]:
    """{role: {variable: option spec}} from every role's main entry point."""
    specs = {}
    for path in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        entry = yaml.safe_load(path.read_text())["argument_specs"]["main"]
        specs[path.parents[1].name] = entry.get("options", {})
    return specs


def expected(spec: Mapping) -> str:
    """What a value should be, in words: 'int', 'list of dict', 'str, one of: a, b'."""
    text = spec.get("type", "str")
    if "elements" in spec:
        text += f" of {spec['elements']}"
    if "choices" in spec:
        text += ", one of: " + ", ".join(str(c) for c in spec["choices"])
    return text


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 3] + "..."


def owner(name: str, specs: Mapping[str, Mapping]) -> str | None:
    """The role a variable name belongs to by prefix (the longest role name that matches)."""
    roles = [role for role in specs if name.startswith(role + "_")]
    return max(roles, key=len) if roles else None


def check_variable(name: str, value: Any, spec: Mapping) -> str | None:
    """Why ``value`` does not fit ``spec``, or None. The role defaults the rest, so a top-level
    ``required`` says nothing about an inventory."""
    top = {k: v for k, v in spec.items() if k not in ("required", "default")}
    result = ArgumentSpecValidator({name: top}).validate({name: value})
    if not result.error_messages:
        return None
    reasons = result.error_messages
    if spec.get("type") in ("list", "dict") and not isinstance(value, (list, dict)):
        return f"expected {expected(spec)}"  # a scalar where a collection belongs
    top_level = (f"'{name}' is of type", f"value of {name} must be one of")
    if len(reasons) == 1 and any(s in reasons[0] for s in top_level):
        return f"expected {expected(spec)}"  # the type or choice itself: nothing to add
    return f"expected {expected(spec)}: " + "; ".join(reasons)


def check_host(host: str, variables: Mapping[str, Any], specs: Mapping[str, Mapping]) -> list[str]:
    """One line per bad value or unknown role variable of one host."""
    known = {name: role for role, options in specs.items() for name in options}
    problems = []
    for name in sorted(variables):
        value = variables[name]
        if name in known:
            if isinstance(value, str) and "{{" in value:
                continue  # still a template (it needs facts): the role checks it when it runs
            why = check_variable(name, value, specs[known[name]][name])
            if why:
                problems.append(f"{host}: {name} = {shown(value)}: {why}")
            continue
        role = owner(name, specs)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
        if role or close:
            hint = f"; did you mean {close[0]}?" if close else ""
            which = f"role {role}" if role else "any role"
            problems.append(f"{host}: {name}: not a variable of {which}{hint}")
    return problems


def check_hosts(hostvars: Mapping[str, Mapping], hosts: Iterable[str], specs=None) -> list[str]:
    specs = load_specs() if specs is None else specs
    return [line for host in hosts for line in check_host(host, hostvars[host], specs)]


class ActionModule(ActionBase):
    """The ``gymlab_preflight`` task: fails listing every bad value of the play's hosts."""

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        hosts = self._task.args.get("hosts") or task_vars.get("ansible_play_hosts_all", [])
        hostvars = task_vars["hostvars"]
        problems = check_hosts({h: host_variables(hostvars[h]) for h in hosts}, hosts)
        result["changed"] = False
        if problems:
            result["failed"] = True
            count = f"{len(problems)} bad inventory value{'s' * (len(problems) != 1)}"
            result["msg"] = f"{count}; no host was contacted:\n" + "\n".join(problems)
        else:
            result["ansible_facts"] = {"gymlab_preflight_passed": True}
            result["msg"] = f"{len(hosts)} host(s): every role variable fits its argument spec"
        return result


def host_variables(hostvars: Mapping) -> dict[str, Any]:
    """A host's inventory variables, templated where that needs no facts."""
    out = {}
    for name in hostvars:
        try:
            out[name] = hostvars[name]
        except AnsibleError:  # a template that needs facts: the role checks it when it runs
            out[name] = "{{ unresolved }}"
    return out
