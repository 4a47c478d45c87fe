"""The query and input limits of one parsed document, checked per request at the cost of its
variables (the compiled read path's hot loop: a validation walk of the document per request
cost about as much CPU as the rest of the request).

``validate(schema, document, [limits_rule(s, v), input_limits_rule(s, v)])`` depends on the
request's variables ``v`` in two ways only:

- the page sizes given by variables (``first``/``last`` arguments: ``hub.access.limits``), which
  change the estimated cost;
- each variable's own value (list lengths, filter width, storable text: ``hub.access.inputs``).

``DocumentLimits.within`` gives the same verdict as that validation: the walk runs once per
distinct tuple of page sizes (literals and depth, aliases and cost), remembered in a small LRU,
and only the variables' values are checked per request.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    GraphQLSchema,
    Node,
    OperationDefinitionNode,
    VariableNode,
    validate,
)

from hub.access.inputs import InputLimits, input_limits_rule, operation_variable_errors
from hub.access.limits import limits_rule
from hub.core.lru import LRU
from hub.core.settings import Settings

# Distinct page-size tuples remembered per document (a client paging with many sizes walks the
# document for the others, as before).
VERDICTS_PER_DOCUMENT = 64
SIZE_ARGUMENTS = ("first", "last")


def size_variables(document: DocumentNode) -> tuple[str, ...]:
    """The variables used as a ``first`` or ``last`` argument anywhere in ``document``."""
    found: set[str] = set()
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, ArgumentNode):
            if node.name.value in SIZE_ARGUMENTS and isinstance(node.value, VariableNode):
                found.add(node.value.name.value)
            continue
        for key in node.keys:
            value = getattr(node, key, None)
            if isinstance(value, Node):
                stack.append(value)
            elif isinstance(value, tuple | list):
                stack.extend(item for item in value if isinstance(item, Node))
    return tuple(sorted(found))


def _page_size(value: Any) -> Any:
    """What ``hub.access.limits`` makes of a variable's page size: the value when it is a
    non-negative int, else None (the default page size)."""
    return value if isinstance(value, int) and value >= 0 else None


class DocumentLimits:
    """The limits of one valid document (parsed and validated by the caller)."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode, settings: Settings) -> None:
        self.schema = schema
        self.document = document
        self.settings = settings
        self.inputs = InputLimits(settings)
        self.sizes = size_variables(document)
        self.operations = [
            d for d in document.definitions if isinstance(d, OperationDefinitionNode)
        ]
        self.verdicts: LRU[tuple[Any, ...], bool] = LRU(VERDICTS_PER_DOCUMENT)
        self.walks = 0  # validation walks made (tests read it)

    def within(self, variables: dict[str, Any]) -> bool:
        """Whether a request with ``variables`` (as sent) passes every query and input limit."""
        key = tuple(_page_size(variables.get(name)) for name in self.sizes)
        verdict = self.verdicts.get(key)
        if verdict is None:
            sizes = dict(zip(self.sizes, key, strict=True))
            rules = [
                limits_rule(self.settings, sizes),
                input_limits_rule(self.settings, {}, check_variables=False),
            ]
            self.walks += 1
            verdict = not validate(self.schema, self.document, rules)
            self.verdicts.put(key, verdict)
        if not verdict:
            return False
        for operation in self.operations:
            for _ in operation_variable_errors(self.inputs, self.schema, operation, variables):
                return False
        return True


# The resolver path parses each request's text anew: its DocumentLimits are kept by text (and by
# the settings object, as tests run apps with other limits in one process).
CACHED_TEXT_CHARS = 20_000  # longer documents are walked each time (no megabytes kept)
_BY_TEXT: LRU[tuple[str, int], tuple[Settings, DocumentLimits]] = LRU(512)


def limits_by_text(
    schema: GraphQLSchema, document: DocumentNode, text: str | None, settings: Settings
) -> DocumentLimits | None:
    """The ``DocumentLimits`` of ``document``, parsed from ``text``, shared by every request
    sending that text; None when the text is unknown or too long to keep."""
    if text is None or len(text) > CACHED_TEXT_CHARS:
        return None
    key = (text, id(settings))
    entry = _BY_TEXT.get(key)
    if entry is None or entry[0] is not settings:
        entry = (settings, DocumentLimits(schema, document, settings))
        _BY_TEXT.put(key, entry)
    return entry[1]
