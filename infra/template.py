"""template.yaml read, linted and turned into plain CloudFormation, offline.

The SAM template is the one description of every resource. The local stack never restates a name, key,
schedule or environment variable: it reads them here. ``translate`` is what ``sam deploy`` asks
CloudFormation's transform to do, done locally with samtranslator and its bundled managed-policy map
(no IAM call), because moto rejects a template that still carries ``Transform``.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import yaml
from samtranslator.yaml_helper import intrinsics_multi_constructor

from infra import InfraError, cron
from infra.emulator import LOCAL_CREDENTIALS, LOCAL_PSEUDO_PARAMETERS, LOCAL_REGION, REPO_ROOT

DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"
# The bucket in the emulator that plays the role of `sam deploy`'s artifact bucket.
CODE_BUCKET = "nbaml-local-code"

FUNCTION = "AWS::Serverless::Function"
LAYER = "AWS::Serverless::LayerVersion"
SCHEDULE_EVENTS = ("Schedule", "ScheduleV2")


class TemplateError(InfraError):
    """The template is unreadable, fails the linter, or cannot be translated."""


class _CfnLoader(yaml.SafeLoader):
    """A SafeLoader that reads the short forms (!Ref, !Sub, !GetAtt a.b ...) as their long forms.

    A subclass, so the global SafeLoader that every other yaml.safe_load in the process uses is untouched
    (samtranslator's own ``yaml_parse`` registers the constructor on SafeLoader itself).
    """


_CfnLoader.add_multi_constructor("!", intrinsics_multi_constructor)


def load(path: Path | str = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """The template as plain dicts, intrinsics in their long form."""
    path = Path(path)
    try:
        template = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"cannot read {path}: {exc}") from exc
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources)")
    return template


# ---------------------------------------------------------------- parameters
def parameters_with_defaults(template: Mapping[str, Any], overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every template parameter's value: the override, else its Default; unknown or disallowed values refused.

    The real values matter: the transform and moto resolve names (``nbaml-${Stage}-games``) from them.
    """
    declared: Mapping[str, Any] = template.get("Parameters") or {}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"unknown template parameter(s) {', '.join(unknown)}; declared: {', '.join(declared)}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in overrides:
            value = str(overrides[name])
        elif "Default" in spec:
            value = str(spec["Default"])
        else:
            raise TemplateError(f"template parameter {name} has no Default: pass --param {name}=VALUE")
        allowed = [str(v) for v in spec.get("AllowedValues") or []]
        if allowed and value not in allowed:
            raise TemplateError(f"{name}={value!r} is not allowed; choose one of {', '.join(allowed)}")
        values[name] = value
    return values


# ---------------------------------------------------------------- what the template declares
def resources_of_type(template: Mapping[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {lid: res for lid, res in template["Resources"].items() if res.get("Type") == resource_type}


def function_properties(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """A function's properties with Globals.Function merged in by samtranslator's own rules (maps merged,
    lists added to, IgnoreGlobals honoured): what the transform gives the function."""
    from samtranslator.plugins.globals.globals import Globals

    resource = template["Resources"].get(logical_id)
    if resource is None or resource.get("Type") != FUNCTION:
        raise TemplateError(f"{logical_id} is not an {FUNCTION} of the template")
    own = copy.deepcopy(resource.get("Properties") or {})
    merged = Globals(copy.deepcopy(dict(template))).merge(FUNCTION, own, logical_id, resource.get("IgnoreGlobals"))
    return dict(merged)


def code_dirs(template: Mapping[str, Any], root: Path = REPO_ROOT) -> dict[str, Path]:
    """Local source directory of every function (CodeUri) and layer (ContentUri), by logical id."""
    dirs: dict[str, Path] = {}
    for logical_id in resources_of_type(template, FUNCTION):
        uri = function_properties(template, logical_id).get("CodeUri")
        if isinstance(uri, str) and not uri.startswith("s3://"):
            dirs[logical_id] = (root / uri).resolve()
    for logical_id, layer in resources_of_type(template, LAYER).items():
        uri = (layer.get("Properties") or {}).get("ContentUri")
        if isinstance(uri, str) and not uri.startswith("s3://"):
            dirs[logical_id] = (root / uri).resolve()
    return dirs


def function_dirs(template: Mapping[str, Any], root: Path = REPO_ROOT) -> dict[str, Path]:
    """Local source directory of every function, by logical id (CollectFunction -> functions/collect)."""
    functions = resources_of_type(template, FUNCTION)
    return {lid: path for lid, path in code_dirs(template, root).items() if lid in functions}


def function_environment(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """A function's declared environment (Globals merged), values still as written (intrinsics unresolved).

    The names are what matter here; the deployed stack resolves the values (LocalStack.env_for).
    """
    return dict((function_properties(template, logical_id).get("Environment") or {}).get("Variables", {}))


def function_settings(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """Runtime, handler, memory and timeout of a function (Globals merged), for the Lambda context."""
    props = function_properties(template, logical_id)
    return {
        "Runtime": props.get("Runtime"),
        "Handler": props.get("Handler", "app.handler"),
        "MemorySize": int(props.get("MemorySize", 128)),
        "Timeout": int(props.get("Timeout", 3)),
    }


@dataclass(frozen=True)
class ScheduleEvent:
    """A function's ``Schedule`` (an EventBridge rule, always UTC) or ``ScheduleV2`` (EventBridge Scheduler)."""

    name: str
    expression: Any  # a string when the template is valid (infra.cron says what it means)
    scheduler: bool  # ScheduleV2: at() expressions and a time zone are allowed
    timezone: Any = cron.UTC  # ScheduleExpressionTimezone
    enabled: bool = True
    input: Any = None  # ScheduleV2's Input: the event Scheduler delivers, with its context attributes filled


def schedules(template: Mapping[str, Any]) -> dict[str, list[ScheduleEvent]]:
    """Every function's schedule events: logical id -> its ScheduleEvents, in template order."""
    found: dict[str, list[ScheduleEvent]] = {}
    for logical_id in resources_of_type(template, FUNCTION):
        events = function_properties(template, logical_id).get("Events") or {}
        for name, event in events.items():
            if event.get("Type") not in SCHEDULE_EVENTS:
                continue
            props = event.get("Properties") or {}
            scheduler = event["Type"] == "ScheduleV2"
            schedule = ScheduleEvent(
                name=name,
                expression=props.get("ScheduleExpression" if scheduler else "Schedule"),
                scheduler=scheduler,
                timezone=props.get("ScheduleExpressionTimezone", cron.UTC) if scheduler else cron.UTC,
                enabled=props.get("State", "ENABLED") != "DISABLED" and props.get("Enabled", True) is not False,
                input=props.get("Input") if scheduler else None,
            )
            found.setdefault(logical_id, []).append(schedule)
    return found


def schedule_problems(template: Mapping[str, Any], where: str = "template") -> list[str]:
    """The linter's word on every schedule (infra.cron's grammar, the one the clock fires by); [] if none."""
    problems = []
    for logical_id, events in schedules(template).items():
        for event in events:
            found = cron.problems(event.expression, scheduler=event.scheduler)
            found += cron.zone_problems(event.timezone) if event.scheduler else []
            problems += [f"E3027 {logical_id}.Events.{event.name}: {p} ({where})" for p in found]
    return problems


def short_name(function_dir: Path) -> str:
    """The name operators type (``collect``, ``drift_check``): the function's source directory."""
    return function_dir.name


# ---------------------------------------------------------------- translate
def _managed_policy_map() -> dict[str, str]:
    from samtranslator.internal.managed_policies import get_bundled_managed_policy_map

    return get_bundled_managed_policy_map("aws") or {}


def translate(
    path_or_template: Path | str | Mapping[str, Any] = DEFAULT_TEMPLATE,
    parameters: Mapping[str, str] | None = None,
    code_bucket: str = CODE_BUCKET,
) -> dict[str, Any]:
    """The SAM template as plain CloudFormation, what CloudFormation's transform would hand to a deploy.

    Local CodeUri/ContentUri become ``s3://<code_bucket>/<logical id>.zip`` (what ``sam package`` does);
    ``code_dirs`` keeps the way back to the sources. Parameters get their real values, pseudo parameters
    the emulator's account and region, and managed policies samtranslator's bundled map: no AWS call.
    """
    from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template

    sam = copy.deepcopy(path_or_template if isinstance(path_or_template, Mapping) else load(path_or_template))
    values: dict[str, Any] = parameters_with_defaults(sam, parameters)
    values |= LOCAL_PSEUDO_PARAMETERS
    for logical_id in code_dirs(sam):
        props = sam["Resources"][logical_id].setdefault("Properties", {})
        props["ContentUri" if sam["Resources"][logical_id]["Type"] == LAYER else "CodeUri"] = (
            f"s3://{code_bucket}/{logical_id}.zip"
        )
    session = boto3.session.Session(
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=LOCAL_REGION,
    )
    policies = _managed_policy_map()
    # The transform counts its own metrics; published to nowhere, or it warns about them at exit.
    metrics = Metrics("ServerlessTransform", DummyMetricsPublisher())
    to_py27_compatible_template(sam, values)
    try:
        translated = Translator(policies, Parser(), boto_session=session, metrics=metrics).translate(
            sam, parameter_values=values, get_managed_policy_map=lambda: policies
        )
    except InvalidDocumentException as exc:
        causes = "; ".join(getattr(cause, "message", str(cause)) for cause in exc.causes) or str(exc)
        raise TemplateError(f"the SAM transform refused the template: {causes}") from exc
    finally:
        metrics.publish()
    return json.loads(json.dumps(undo_mark_unicode_str_in_template(translated)))


# ---------------------------------------------------------------- lint
def _format_match(match: Any, where: str | None = None) -> str:
    location = where or f"{match.filename}:{match.linenumber}:{match.columnnumber}"
    return f"{match.rule.id} {match.message} ({location})"


def lint(
    path: Path | str = DEFAULT_TEMPLATE, parameters: Mapping[str, str] | None = None, *, warnings: bool = False
) -> list[str]:
    """cfn-lint's findings on the template, one line each (errors only unless ``warnings``); [] when clean.

    Three passes, because each catches what the others cannot. cfn-lint 1.x validates the SAM template
    against SAM's schema without transforming it, so its rules for plain resources (E3027 on an
    ``AWS::Events::Rule`` ScheduleExpression) never see the rules a SAM ``Schedule`` event becomes: the
    translated template is linted as well. Neither checks a cron field's range (``cron(0 27 * * ? *)``
    passes both, and moto accepts it), so the schedules are checked last, by ``infra.cron``.
    """
    from cfnlint.api import ManualArgs, lint_file
    from cfnlint.api import lint as lint_string

    path = Path(path)

    def keep(match: Any) -> bool:
        return bool(match.rule.id.startswith("E") or (warnings and match.rule.id.startswith("W")))

    config = ManualArgs(regions=[LOCAL_REGION])
    problems = [_format_match(m) for m in lint_file(path, config) if keep(m)]
    if problems:
        return problems
    template = load(path)
    try:
        translated = translate(template, parameters)
    except TemplateError as exc:
        return [f"{exc} ({path.name})"]
    for match in lint_string(json.dumps(translated, indent=1), regions=[LOCAL_REGION]):
        if keep(match):
            where = "/".join(str(p) for p in match.path) if getattr(match, "path", None) else "translated template"
            problems.append(_format_match(match, f"{path.name}, translated: {where}"))
    return problems + schedule_problems(template, path.name)


# ---------------------------------------------------------------- names the template implies
def stack_name_for(stage: str, samconfig: Path = REPO_ROOT / "samconfig.toml") -> str:
    """The stack name ``sam deploy`` would use for ``stage``: the samconfig environment deploying that Stage.

    Falls back to ``nbaml-<stage>`` only when samconfig.toml names none, so both deploys agree on names.
    """
    import tomllib

    try:
        config = tomllib.loads(samconfig.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        config = {}
    for env in config.values():
        if not isinstance(env, dict):
            continue
        overrides = str(((env.get("deploy") or {}).get("parameters") or {}).get("parameter_overrides", ""))
        name = ((env.get("global") or {}).get("parameters") or {}).get("stack_name")
        if name and re.search(rf'\bStage=\\?"?{re.escape(stage)}\\?"?(\s|$)', overrides):
            return str(name)
    return f"nbaml-{stage}"


def http_api_functions(template: Mapping[str, Any]) -> list[str]:
    """Functions that serve the HTTP API (an ``HttpApi`` event): what ``nbaml serve`` runs."""
    return [
        logical_id
        for logical_id in resources_of_type(template, FUNCTION)
        if any(
            e.get("Type") == "HttpApi" for e in (function_properties(template, logical_id).get("Events") or {}).values()
        )
    ]


def request_path_functions(template: Mapping[str, Any]) -> list[str]:
    """The functions an HTTP caller waits on: those serving the HTTP API and the Lambda authorizers in front of it
    (``FunctionArn: !GetAtt X.Arn`` under an HttpApi's ``Auth.Authorizers``)."""
    functions = resources_of_type(template, FUNCTION)
    authorizers = []
    for api in resources_of_type(template, "AWS::Serverless::HttpApi").values():
        for authorizer in (((api.get("Properties") or {}).get("Auth") or {}).get("Authorizers") or {}).values():
            arn = authorizer.get("FunctionArn")
            target = arn.get("Fn::GetAtt") if isinstance(arn, dict) else None
            name = target[0] if isinstance(target, list) else str(target or "").split(".")[0]
            if name in functions and name not in authorizers:
                authorizers.append(name)
    return [*http_api_functions(template), *authorizers]


def function_layers(template: Mapping[str, Any], logical_id: str) -> list[str]:
    """The logical ids of the template's own layers a function is deployed with (Globals included), in order."""
    layers = function_properties(template, logical_id).get("Layers") or []
    return [layer["Ref"] for layer in layers if isinstance(layer, dict) and "Ref" in layer]


# ---------------------------------------------------------------- intrinsic functions
class Intrinsics:
    """CloudFormation intrinsics resolved by moto's own evaluator against what the local stack knows.

    ``clean_json`` is the function moto's CloudFormation resolves every resource it creates with (Ref, Sub,
    GetAtt, If, Join, Select, Split, FindInMap, Base64 ...), so what the deploy fills by hand is resolved
    exactly as what moto created. It reads a ResourceMap; ``_Known`` is the part of one it asks for:
    parameters and pseudo parameters by name, physical ids through ``ref``, attributes through ``get_att``,
    and conditions. A name nobody knows raises instead of resolving to nothing.
    """

    def __init__(
        self,
        parameters: Mapping[str, str],
        pseudo: Mapping[str, str],
        conditions: Mapping[str, Any] | None = None,
        ref: Callable[[str], Any] | None = None,
        get_att: Callable[[str, str], Any] | None = None,
    ) -> None:
        self._known = _Known({**parameters, **pseudo, "AWS::NoValue": None}, conditions or {}, ref, get_att)

    def condition(self, name: str) -> bool:
        if name not in self._known.lazy_condition_map:
            raise TemplateError(f"unknown condition {name}")
        return bool(self._known.lazy_condition_map[name])

    def resolve(self, value: Any) -> Any:
        from moto.cloudformation.parsing import clean_json

        return clean_json(value, self._known)  # type: ignore[arg-type]


class _Known(dict[str, Any]):
    """The part of moto's ResourceMap that ``clean_json`` reads."""

    def __init__(
        self,
        values: Mapping[str, Any],
        conditions: Mapping[str, Any],
        ref: Callable[[str], Any] | None,
        get_att: Callable[[str, str], Any] | None,
    ) -> None:
        from moto.cloudformation.parsing import LazyDict, parse_condition

        super().__init__(values)
        self._ref, self._get_att = ref, get_att
        self.lazy_condition_map = LazyDict()
        for name, spec in conditions.items():
            self.lazy_condition_map[name] = functools.partial(parse_condition, spec, self, self.lazy_condition_map)

    def __missing__(self, name: str) -> Any:  # a Ref to what is not a parameter: a resource's physical id
        if self._ref is None:
            raise TemplateError(f"!Ref {name} needs a deployed stack to resolve")
        return self._ref(name)

    def get(self, name: str, default: Any = None) -> Any:  # moto asks for the resource whose attribute it wants
        return _Attributes(name, self._get_att)


@dataclass(frozen=True)
class _Attributes:
    logical_id: str
    get_att: Callable[[str, str], Any] | None

    def get_cfn_attribute(self, attribute: str) -> Any:
        if self.get_att is None:
            raise TemplateError(f"!GetAtt {self.logical_id}.{attribute} needs a deployed stack to resolve")
        return self.get_att(self.logical_id, attribute)


def active_resources(translated: Mapping[str, Any], intrinsics: Intrinsics) -> dict[str, dict[str, Any]]:
    """The translated template's resources whose Condition holds: what a deploy must create."""
    return {
        logical_id: resource
        for logical_id, resource in translated["Resources"].items()
        if "Condition" not in resource or intrinsics.condition(resource["Condition"])
    }


def parameter_root(template: Mapping[str, Any], stage: str) -> str:
    """The SSM path every parameter of a stage lives under ("/nbaml/dev/"), read off the template.

    It is the longest common path of the template's SSM parameter names and of the parameter names its
    functions' environments carry (the SecureStrings it cannot create), with ``${Stage}`` resolved.
    """
    names = [
        str(_sub_text(r["Properties"]["Name"])) for r in resources_of_type(template, "AWS::SSM::Parameter").values()
    ]
    for logical_id in resources_of_type(template, FUNCTION):
        for key, value in function_environment(template, logical_id).items():
            if key.endswith("_PARAM") and str(_sub_text(value)).startswith("/"):
                names.append(str(_sub_text(value)))
    if not names:
        raise TemplateError("the template names no SSM parameters")
    paths = [name.replace("${Stage}", stage).split("/") for name in names]
    common: list[str] = []
    for parts in zip(*paths, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return "/".join(common) + "/"


def _sub_text(value: Any) -> Any:
    return value.get("Fn::Sub", value) if isinstance(value, Mapping) else value
