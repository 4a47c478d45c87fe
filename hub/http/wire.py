"""The GraphQL-over-HTTP request, read by the spec: what a POST body or GET query string asks to
run, the operation it selects, and the media type the answer speaks.

Everything a client can get wrong about the request itself (not JSON, not UTF-8, not an object,
nested too deep, a parameter of the wrong type, no query, an ambiguous or unknown operation, a
subscription over HTTP, a mutation by GET) becomes a ``RequestRefused`` with a 4xx status and an
``extensions.code``; ``hub.http.view`` answers it as JSON. Documents that do not parse are left to
the GraphQL pipeline, which answers them with its own codes (and the token limit).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import orjson
from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, OperationType, parse

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
APPLICATION_JSON = "application/json"
CACHED_DOCUMENT_CHARS = 20_000  # longer documents are parsed each time (no megabytes cached)
WEBSOCKET_HINT = {"websocket": "/graphql", "protocol": "graphql-transport-ws"}


@dataclass(frozen=True)
class RequestRefused(Exception):
    """A malformed GraphQL-over-HTTP request: answered ``status`` with one coded error."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphQLParams:
    """The request's parameters, each of the type the spec allows."""

    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None
    # GraphQL-over-HTTP's `documentId` (a trusted document); ``query`` is "" until
    # hub.http.documents resolves it (as for an APQ hash sent without its query).
    document_id: str | None = None
    # The document the request runs is a trusted (registered) one: a GET of it may be cached.
    trusted: bool = False
    # A trusted document's ``DocumentNode``, parsed once per process (Strawberry reuses it).
    parsed: DocumentNode | None = None

    def payload(self) -> dict[str, Any]:
        """The parameters as a POST body carries them (what the compiled paths read)."""
        return {
            "query": self.query,
            "variables": self.variables,
            "operationName": self.operation_name,
            "extensions": self.extensions,
        }


def response_media_type(accept: str | None) -> str:
    """``application/graphql-response+json`` when the client accepts it before (or instead of)
    ``application/json``; ``application/json`` otherwise (also with no Accept, as the spec asks
    during its watershed)."""
    if not accept:
        return APPLICATION_JSON
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media == GRAPHQL_RESPONSE_JSON:
            return GRAPHQL_RESPONSE_JSON
        if media in (APPLICATION_JSON, "application/*", "*/*"):
            return APPLICATION_JSON
    return APPLICATION_JSON


def _bad(message: str, code: str = "BAD_REQUEST") -> RequestRefused:
    return RequestRefused(400, code, message)


def json_depth(value: Any, limit: int) -> int:
    """How deeply arrays and objects nest in ``value`` (a parsed JSON value), level by level:
    no recursion, and the walk stops one level past ``limit``."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level and depth <= limit:
        depth += 1
        below: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            below += [child for child in children if isinstance(child, dict | list)]
        level = below
    return depth


def load_json(raw: bytes | str, max_depth: int, what: str) -> Any:
    """``raw`` parsed as JSON, refused (400) when it is not UTF-8 or not JSON (BAD_REQUEST), or
    nested deeper than ``max_depth`` (JSON_TOO_DEEP). orjson parses in C and stops by itself at
    1,024 levels, so no depth reaches the Python stack; ``json_depth`` then applies the limit."""
    if isinstance(raw, bytes):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad(f"the {what} is not valid UTF-8") from None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        if "depth" in str(error).lower():  # orjson's own bound
            raise _too_deep(what, max_depth) from None
        raise _bad(f"the {what} is not valid JSON") from None
    if json_depth(value, max_depth) > max_depth:
        raise _too_deep(what, max_depth)
    return value


def _too_deep(what: str, max_depth: int) -> RequestRefused:
    return _bad(f"the {what} nests deeper than {max_depth} levels", "JSON_TOO_DEEP")


def params_from_body(body: bytes, max_depth: int) -> GraphQLParams:
    """A POST's parameters (its Content-Type was checked by the gate)."""
    if not body.strip():
        raise _bad("the request body is empty: send a JSON object with a `query`")
    data = load_json(body, max_depth, "request body")
    if not isinstance(data, dict):
        raise _bad("the request body must be a JSON object with a `query` (no batches)")
    return _params(data)


def params_from_query_string(values: dict[str, str], max_depth: int) -> GraphQLParams:
    """A GET's parameters: ``variables`` and ``extensions`` are URL-encoded JSON."""
    data: dict[str, Any] = {
        "query": values.get("query"),
        "operationName": None,
        "documentId": values.get("documentId"),
    }
    if "operationName" in values:
        data["operationName"] = values["operationName"] or None
    for name in ("variables", "extensions"):
        text = values.get(name)
        data[name] = load_json(text, max_depth, f"`{name}` parameter") if text else None
    return _params(data)


def _params(data: dict[str, Any]) -> GraphQLParams:
    query, variables = data.get("query"), data.get("variables")
    name, extensions = data.get("operationName"), data.get("extensions")
    document_id = data.get("documentId")
    if not isinstance(document_id, str | None):
        raise _bad("`documentId` must be a string")
    if not isinstance(extensions, dict | None):
        raise _bad("`extensions` must be an object (or null)")
    by_id = document_id is not None or "persistedQuery" in (extensions or {})
    if query is None and by_id:
        query = ""  # hub.http.documents finds it by its id
    elif query is None:
        raise _bad("the request has no `query`: send the GraphQL document as a string")
    if not isinstance(query, str):
        raise _bad("`query` must be a string")
    if not isinstance(variables, dict | None):
        raise _bad("`variables` must be an object (or null)")
    if not isinstance(name, str | None):
        raise _bad("`operationName` must be a string (or null)")
    return GraphQLParams(query, variables, name, extensions, document_id)


Operations = tuple[tuple[str | None, OperationType], ...]


def _document_operations(query: str, max_tokens: int) -> Operations | None:
    """The (name, type) of each operation the document defines; None: it does not parse."""
    try:
        document = parse(query, no_location=True, max_tokens=max_tokens)
    except GraphQLError:
        return None
    return tuple(
        (d.name.value if d.name else None, d.operation)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    )


@functools.lru_cache(maxsize=1024)
def _cached_operations(query: str, max_tokens: int) -> Operations | None:
    return _document_operations(query, max_tokens)


def selected_operation(params: GraphQLParams, method: str, max_tokens: int) -> OperationType | None:
    """The type of the operation the request selects; refused when none or several could be
    meant, or when its type cannot run over HTTP with this method. None: the document does not
    parse (within ``max_tokens``), or defines no operation: the GraphQL pipeline answers it."""
    query = params.query
    found = (
        _document_operations(query, max_tokens)
        if len(query) > CACHED_DOCUMENT_CHARS
        else _cached_operations(query, max_tokens)
    )
    if not found:
        return None
    name = params.operation_name
    if name is None:
        if len(found) > 1:
            raise _bad(
                "the document defines several operations: name the one to run in `operationName`",
                "OPERATION_NAME_REQUIRED",
            )
        kind = found[0][1]
    else:
        kinds = [kind for operation, kind in found if operation == name]
        if not kinds:
            raise _bad(f"the document defines no operation named {name!r}", "UNKNOWN_OPERATION")
        kind = kinds[0]
    if kind is OperationType.SUBSCRIPTION:
        raise RequestRefused(
            400,
            "SUBSCRIPTION_OVER_HTTP",
            "subscriptions run over the websocket at /graphql (graphql-transport-ws), not HTTP",
            extensions=dict(WEBSOCKET_HINT),
        )
    if kind is OperationType.MUTATION and method == "GET":
        raise RequestRefused(
            405,
            "METHOD_NOT_ALLOWED",
            "mutations cannot run by GET: send them as POST",
            headers={"Allow": "POST"},
        )
    return kind
