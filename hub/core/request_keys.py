"""Every key a request carries between layers, in one place.

Two carriers: the ASGI scope of an HTTP request (the layers of ``/graphql`` leave what they learn
there for the outer ones: the log line, the metrics, the operation span), and the ``extras`` of
the request's ``Context`` (what resolvers and schema extensions find beside the typed fields).
The string values show in logs and tests: they never change.
"""

from __future__ import annotations

# ---- ASGI scope (HTTP requests to /graphql) ----

# The caller's ``Principal``, set by the access gate once the API key checked out.
PRINCIPAL_KEY = "hub.principal"
# The request id (the caller's X-Request-Id, or a fresh one), set by the request observer.
REQUEST_ID_KEY = "hub.request_id"
# The operation's metrics and log label (its name, or "anonymous"), set per operation.
OPERATION_KEY = "hub.operation"
# "error" once the answer carries any error; absent means "ok" (metrics, log line).
OUTCOME_KEY = "hub.outcome"
# True when read routing chose the replica for this query (hub.db.replica.ReadRouter).
REPLICA_KEY = "hub.read_replica"
# The type of the operation that ran ("query", "mutation"...), for the operation span.
OPERATION_TYPE_KEY = "hub.operation_type"
# The ``extensions.code`` of every error in the answer, for the operation span.
ERROR_CODES_KEY = "hub.error_codes"
# "compiled" when a compiled path answered (absent: the resolvers), for the operation span.
READ_PATH_KEY = "hub.read_path"

# ---- Context.extras (HTTP and websockets) ----

# The process's ``ReadRouter``, so that a mutation records the caller's read fence.
ROUTER_KEY = "read_router"
# The app's ``HubMetrics`` (absent for the CLI and seeds, which count nothing).
METRICS_KEY = "metrics"
# A trusted document's parsed ``DocumentNode`` (hub.http.documents): parsed once per process,
# Strawberry does not parse its text again (hub.schema.extensions.TrustedDocumentParse).
TRUSTED_DOCUMENT_KEY = "trusted_document"
# The small engine of the audit log's rows (``Resources.audit_engine``; absent: the writer).
AUDIT_ENGINE_KEY = "audit_engine"
