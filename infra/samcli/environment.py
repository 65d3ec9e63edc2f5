"""What SAM's containers run with: the ``--env-vars`` file and the template SAM reads.

The file is generated from the deployed stack (``LocalStack.env_for``), one entry per function, each
pointed at the emulator as a container sees it (``http://nbaml-moto:5000``) with the emulator's test
credentials; ``credentials`` can give a function its own keys instead (its role's, once the emulator
evaluates IAM). ``check`` refuses a file in which any function lacks ``AWS_ENDPOINT_URL``: such a function
would send its calls to AWS's public endpoints.

SAM CLI applies an ``--env-vars`` value only to a variable the template declares for that function
(measured: ``samcli.local.lambdafn.env_vars``), and template.yaml rightly declares neither
``AWS_ENDPOINT_URL`` nor credentials. So SAM reads ``template.nbaml-local-<digest>.yaml`` beside the built template:
the built template with the names the file sets but the template does not declare added to
``Globals.Function.Environment`` as empty strings. Code, layers, handlers and every other property are
the built template's own; the values come only from the file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import yaml

from infra import stack as stk
from infra import template as tpl
from infra.samcli import SamError

LOCAL_TEMPLATE = "template.nbaml-local-{digest}.yaml"
REQUIRED = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")

Environments = dict[str, dict[str, str]]


def function_environments(
    stack: stk.LocalStack,
    endpoint: str,
    *,
    credentials: Mapping[str, Mapping[str, str]] | None = None,
    extra: Mapping[str, Mapping[str, str]] | None = None,
) -> Environments:
    """Every function's environment, by logical id, as its container must see it.

    ``endpoint`` is the emulator as containers reach it; ``credentials`` and ``extra`` are keyed by logical
    id (``extra``: settings of a local run, e.g. the replay's quieter log level).
    """
    environments = {}
    for logical_id in stack.functions:
        env = stack.env_for(
            logical_id, lambda_runtime=False, endpoint=endpoint, credentials=(credentials or {}).get(logical_id)
        )
        environments[logical_id] = {**env, **(extra or {}).get(logical_id, {})}
    check(stack, environments)
    return environments


def check(stack: stk.LocalStack, environments: Mapping[str, Mapping[str, str]]) -> None:
    """Refuse environments that leave a function of the stack without the emulator's endpoint or credentials."""
    problems = []
    for logical_id in stack.functions:
        env = environments.get(logical_id)
        if env is None:
            problems.append(f"{logical_id} has no entry")
            continue
        missing = [name for name in REQUIRED if not env.get(name)]
        if missing:
            problems.append(f"{logical_id} lacks {', '.join(missing)}")
    if problems:
        raise SamError("the --env-vars file would let a function call AWS's public endpoints: " + "; ".join(problems))


def write_env_vars(path: Path, environments: Mapping[str, Mapping[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(environments, indent=2, sort_keys=True) + "\n")
    return path


def local_template(built_template: Path, environments: Mapping[str, Mapping[str, str]]) -> Path:
    """The built template with every name of ``environments`` declared, written beside it (so each
    function's CodeUri and each layer's ContentUri still resolve); returns its path."""
    if not built_template.exists():
        raise SamError(f"{built_template} does not exist: run `make build` (sam build) first")
    template = tpl.load(built_template)
    functions = tpl.resources_of_type(template, tpl.FUNCTION)
    undeclared: set[str] = set()
    for logical_id, variables in environments.items():
        if logical_id not in functions:
            raise SamError(f"{logical_id} is not a function of {built_template}: run `make build` again")
        undeclared |= set(variables) - set(tpl.function_environment(template, logical_id))
    globals_env = template.setdefault("Globals", {}).setdefault("Function", {}).setdefault("Environment", {})
    declared = globals_env.setdefault("Variables", {})
    for name in sorted(undeclared):
        declared.setdefault(name, "")
    # Named by the names it adds, so stacks with different local settings never overwrite each other's.
    digest = hashlib.sha256(" ".join(sorted(undeclared)).encode()).hexdigest()[:8]
    target = built_template.with_name(LOCAL_TEMPLATE.format(digest=digest))
    target.write_text(
        "# Written by infra/samcli/environment.py: the built template, plus the local-only variable names the\n"
        "# --env-vars file fills (SAM CLI applies it only to declared names). Never deployed.\n"
        + yaml.safe_dump(template, sort_keys=False, width=120)
    )
    return target
