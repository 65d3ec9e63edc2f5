"""Does an IAM policy allow an action on a resource? Enough of IAM's evaluation to judge our own policies.

moto does not enforce IAM, so least privilege is checked on the translated template's policy documents:
Allow and Deny statements, Action/NotAction and Resource/NotResource with ``*`` and ``?`` wildcards,
an explicit Deny winning. Conditions are not evaluated: a statement with a Condition counts as allowing
(the conservative reading for "may this function ever write there?").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any


@cache
def _pattern(glob: str, case_sensitive: bool) -> re.Pattern[str]:
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in glob)
    return re.compile(f"^{body}$", 0 if case_sensitive else re.IGNORECASE)


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _matches(patterns: Iterable[str], value: str, *, case_sensitive: bool) -> bool:
    return any(_pattern(p, case_sensitive).match(value) for p in patterns)


def _applies(statement: Mapping[str, Any], action: str, resource: str) -> bool:
    if "Action" in statement:
        action_ok = _matches(_as_list(statement["Action"]), action, case_sensitive=False)
    else:
        action_ok = not _matches(_as_list(statement.get("NotAction")), action, case_sensitive=False)
    if "Resource" in statement:
        resource_ok = _matches(_as_list(statement["Resource"]), resource, case_sensitive=True)
    else:
        resource_ok = not _matches(_as_list(statement.get("NotResource")), resource, case_sensitive=True)
    return action_ok and resource_ok


def allows(statements: Iterable[Mapping[str, Any]], action: str, resource_arn: str) -> bool:
    """True when some statement allows ``action`` on ``resource_arn`` and none denies it."""
    statements = list(statements)
    if any(s.get("Effect") == "Deny" and _applies(s, action, resource_arn) for s in statements):
        return False
    return any(s.get("Effect") == "Allow" and _applies(s, action, resource_arn) for s in statements)


def role_statements(role_properties: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every statement of a role's inline policies (an ``AWS::IAM::Role``'s resolved properties)."""
    found: list[dict[str, Any]] = []
    for policy in role_properties.get("Policies", []):
        statement = policy["PolicyDocument"].get("Statement", [])
        found.extend([statement] if isinstance(statement, dict) else statement)
    return found
