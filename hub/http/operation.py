"""What an HTTP GraphQL request asks to run, read once per request (``hub.http.wire`` has the
spec's rules), and the answers to requests that are refused before running anything."""

from __future__ import annotations

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from hub.http.gate import error_body
from hub.http.wire import (
    GraphQLParams,
    RequestRefused,
    params_from_body,
    params_from_query_string,
)

# Codes of errors that happen to a request that did run (the server's side, not the request's):
# with no data they still are not a malformed request.
SERVER_SIDE_CODES = frozenset(
    {"TIMEOUT", "SERVICE_UNAVAILABLE", "INTERNAL_SERVER_ERROR", "CONFLICT"}
)


async def read_params(request: Request, max_json_depth: int) -> GraphQLParams:
    """The request's GraphQL parameters (the gate has already read and bounded the body)."""
    if request.method == "GET":
        return params_from_query_string(dict(request.query_params), max_json_depth)
    return params_from_body(await request.body(), max_json_depth)


def runs_an_operation(request: Request) -> bool:
    """False for the explorer's page (GET without a query string): no operation span for it."""
    return request.method == "POST" or bool(request.scope.get("query_string"))


def refused_response(refused: RequestRefused, media: str) -> Response:
    """A refused request's JSON answer, in the negotiated media type, with no ``data`` entry."""
    body = error_body(refused.message, refused.code, **refused.extensions)
    return Response(body, refused.status, headers=refused.headers, media_type=media)


def not_executed(result: ExecutionResult) -> bool:
    """Whether ``result`` answers a request that never started executing: the document did not
    parse or validate, a variable did not coerce, or a limit refused it (no data, and no error
    on a field's path or on the server's side)."""
    if isinstance(result, PreExecutionError):
        return True
    errors: list[GraphQLError] = result.errors or []
    return (
        result.data is None
        and bool(errors)
        and all(
            not error.path and (error.extensions or {}).get("code") not in SERVER_SIDE_CODES
            for error in errors
        )
    )
