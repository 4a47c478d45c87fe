"""What an HTTP GraphQL request asks to run, read once per request."""

from __future__ import annotations

from typing import Any

from graphql import OperationType
from starlette.requests import Request

from hub.compiled.executor import json_body
from hub.db.replica import operation_type as document_operation_type
from hub.ops.metrics import operation_label


async def parse_body(request: Request) -> Any:
    """A POST's JSON body (None: not JSON, or a GET). Parsed once, here, for the metrics label,
    the replica routing and the compiled paths."""
    return await json_body(request) if request.method == "POST" else None


def runs_an_operation(request: Request) -> bool:
    """False for the explorer's page (GET without a query string): no operation span for it."""
    return request.method == "POST" or bool(request.scope.get("query_string"))


def operation_name(request: Request, payload: Any) -> str:
    """The metrics/log label of the operation the client named."""
    if request.method == "GET":
        return operation_label(request.query_params.get("operationName"))
    return operation_label(payload.get("operationName") if isinstance(payload, dict) else None)


def operation_type(request: Request, payload: Any) -> OperationType | None:
    """Query, mutation or subscription: what the request asks to run (None: unknown)."""
    if request.method == "GET":
        query, name = request.query_params.get("query"), request.query_params.get("operationName")
    elif isinstance(payload, dict):
        query, name = payload.get("query"), payload.get("operationName")
    else:
        return None
    if not isinstance(query, str) or not (name is None or isinstance(name, str)):
        return None
    return document_operation_type(query, name)
