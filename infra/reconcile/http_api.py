"""The HTTP API (moto's CloudFormation skips it): the API from its OpenAPI body, its authorizers, its stage."""

from __future__ import annotations

import json
from typing import Any

from infra.reconcile import Deployment, check, handled, reconciles

ANY_METHOD = "x-amazon-apigateway-any-method"
# An authorizer's OpenAPI extension fields, as create_authorizer names and types them.
_AUTHORIZER_FIELDS = {
    "authorizerUri": ("AuthorizerUri", str),
    "identitySource": ("IdentitySource", list),
    "authorizerPayloadFormatVersion": ("AuthorizerPayloadFormatVersion", str),
    "enableSimpleResponses": ("EnableSimpleResponses", bool),
    "authorizerResultTtlInSeconds": ("AuthorizerResultTtlInSeconds", int),
}


@reconciles("AWS::ApiGatewayV2::Api")
def _http_api(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    """The OpenAPI body through reimport_api (moto has no import_api), then what moto's import leaves out.

    moto's reimport names a route by its method key, so OpenAPI's any-method extension is renamed to
    API Gateway's ANY first; it creates no authorizers and secures no route, so those follow by hand.
    """
    body = props.get("Body")
    check(isinstance(body, dict), f"{lid}: only an inline OpenAPI Body is supported locally")
    paths = {
        path: {("any" if method == ANY_METHOD else method): operation for method, operation in methods.items()}
        for path, methods in (body.get("paths") or {}).items()
    }
    api = d.client("apigatewayv2")
    title = str((body.get("info") or {}).get("title") or f"{d.stack_name}-{lid}")
    api_id = d.physical[lid] = d.api_id = str(api.create_api(Name=title, ProtocolType="HTTP")["ApiId"])
    api.reimport_api(ApiId=api_id, Body=json.dumps({**body, "paths": paths}))
    authorizers: dict[str, str] = {}
    for name, scheme in ((body.get("components") or {}).get("securitySchemes") or {}).items():
        spec = scheme.get("x-amazon-apigateway-authorizer")
        if spec:
            fields = {api_name: cast(spec[key]) for key, (api_name, cast) in _AUTHORIZER_FIELDS.items() if key in spec}
            authorizer = api.create_authorizer(ApiId=api_id, Name=name, AuthorizerType=spec["type"].upper(), **fields)
            authorizers[name] = str(authorizer["AuthorizerId"])
            read = api.get_authorizer(ApiId=api_id, AuthorizerId=authorizers[name])
            check(read.get("AuthorizerUri") == spec.get("authorizerUri"), f"{lid}: authorizer {name} read back")
    routes = {route["RouteKey"]: route["RouteId"] for route in api.get_routes(ApiId=api_id)["Items"]}
    for path, methods in paths.items():
        for method, operation in methods.items():
            key = f"{method.upper()} {path}"
            check(key in routes, f"{lid}: route {key} was not imported")
            # SAM marks a route that opts out of the API's DefaultAuthorizer with the pseudo-scheme NONE.
            schemes = [name for requirement in operation.get("security", []) for name in requirement if name != "NONE"]
            if schemes:
                api.update_route(
                    ApiId=api_id, RouteId=routes[key], AuthorizationType="CUSTOM", AuthorizerId=authorizers[schemes[0]]
                )
    check(len(routes) == sum(len(methods) for methods in paths.values()), f"{lid}: routes read back")
    d.note(lid, f"created: create_api + reimport_api + {len(authorizers)} authorizer(s) for {len(routes)} route(s)")
    return api_id


_STAGE_PROPERTIES = {"ApiId", "StageName", "AutoDeploy", "DefaultRouteSettings", "AccessLogSettings", "Tags"}


@reconciles("AWS::ApiGatewayV2::Stage")
def _http_api_stage(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    """create_stage with the throttle and the access log settings (no API Gateway writes the log locally)."""
    handled(lid, props, _STAGE_PROPERTIES)
    api = d.client("apigatewayv2")
    arguments = dict(props)
    if "DefaultRouteSettings" in arguments:
        settings = dict(arguments["DefaultRouteSettings"])
        if "ThrottlingRateLimit" in settings:
            settings["ThrottlingRateLimit"] = float(settings["ThrottlingRateLimit"])
        if "ThrottlingBurstLimit" in settings:
            settings["ThrottlingBurstLimit"] = int(settings["ThrottlingBurstLimit"])
        arguments["DefaultRouteSettings"] = settings
    api.create_stage(**arguments)
    read = api.get_stage(ApiId=props["ApiId"], StageName=props["StageName"])
    check(read["StageName"] == props["StageName"], f"{lid}: stage did not read back")
    for key in ("AccessLogSettings", "Tags"):
        check(read.get(key) == props.get(key), f"{lid}: {key} did not read back")
    d.physical[lid] = props["StageName"]
    d.note(lid, "created: create_stage (moto's CloudFormation skips the type)")
    return str(props["StageName"])
