"""What the audit log records of a mutation operation: its root fields and the ids it targets.

Shared by the schema extension (``hub.schema.extensions.AccessGuard``) and the compiled ingest
path, so both write the same audit row for the same document.
"""

from __future__ import annotations

from typing import Any

from graphql import FieldNode, OperationDefinitionNode, StringValueNode, VariableNode

MAX_AUDITED_IDS = 100


def _collect_ids(value: Any, key: str, found: list[str]) -> None:
    """Id-looking values: under keys named id/ids or ending in Id/Ids."""
    if isinstance(value, dict):
        for child_key, child in value.items():
            _collect_ids(child, child_key, found)
    elif isinstance(value, list):
        for child in value:
            _collect_ids(child, key, found)
    elif isinstance(value, str) and (key in ("id", "ids") or key.endswith(("Id", "Ids"))):
        found.append(value)


def _collect_names(arguments: dict[str, Any], found: list[str]) -> None:
    for value in [arguments.get("name"), (arguments.get("input") or {}).get("name")]:
        if isinstance(value, str):
            found.append(value)


def _argument_value(node: Any, variables: dict[str, Any]) -> Any:
    if isinstance(node, VariableNode):
        return variables.get(node.name.value)
    if isinstance(node, StringValueNode):
        return node.value
    fields = getattr(node, "fields", None)
    if fields is not None:
        return {f.name.value: _argument_value(f.value, variables) for f in fields}
    values = getattr(node, "values", None)
    if values is not None:
        return [_argument_value(v, variables) for v in values]
    return None


def audit_targets(
    mutation: OperationDefinitionNode, variables: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """The audit row's root fields and target ids (deduplicated, at most ``MAX_AUDITED_IDS``)
    of a mutation operation with these (raw JSON) variables."""
    fields: list[str] = []
    ids: list[str] = []
    for selection in mutation.selection_set.selections:
        if isinstance(selection, FieldNode):
            fields.append(selection.name.value)
            arguments = {
                a.name.value: _argument_value(a.value, variables) for a in selection.arguments or ()
            }
            _collect_ids(arguments, "", ids)
            if "ApiKey" in selection.name.value:
                # Keys are known by name; other names (of people) never go to the log.
                _collect_names(arguments, ids)
    return fields, list(dict.fromkeys(ids))[:MAX_AUDITED_IDS]
