"""The agent API as an OpenAPI 3.1 document, generated from the models and routes."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from podnet import __version__
from podnet.api import models as m
from podnet.api.routes import ROUTES

REF = "#/components/schemas/{model}"


def build() -> dict[str, Any]:
    models: set[type[BaseModel]] = {m.Error}
    for route in ROUTES:
        models.update(x for x in (route.request, route.response) if x is not None)
    ordered = sorted(models, key=lambda x: x.__name__)
    _, schema = models_json_schema([(x, "serialization") for x in ordered], by_alias=True, ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        operation: dict[str, Any] = {"operationId": route.name, "summary": route.summary, "responses": {}}
        params: list[dict[str, Any]] = []
        for name in re.findall(r"\{(\w+)\}", route.path):
            params.append({"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
        for name, description in route.query:
            params.append({"name": name, "in": "query", "description": description, "schema": {"type": "string"}})
        for name, description in route.headers:
            params.append({"name": name, "in": "header", "description": description, "schema": {"type": "string"}})
        if params:
            operation["parameters"] = params
        if route.request is not None:
            one = {"$ref": REF.format(model=route.request.__name__)}
            body_schema = (
                {"oneOf": [one, {"type": "array", "items": one, "minItems": 1}]} if route.request_list else one
            )
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body_schema}}}
        if route.response is None:
            operation["responses"][str(route.status)] = {"description": "done"}
        else:
            ref = {"$ref": REF.format(model=route.response.__name__)}
            body = {"type": "array", "items": ref} if route.list_response else ref
            operation["responses"][str(route.status)] = {
                "description": "success",
                "content": {"application/json": {"schema": body}},
            }
        for code in route.errors:
            operation["responses"][str(code)] = {
                "description": "error",
                "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
            }
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "podnet agent API", "version": __version__},
        "paths": paths,
        "components": {"schemas": schema.get("$defs", {})},
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(render())
