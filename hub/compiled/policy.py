"""What a caller may read, as the compiler sees it.

The compiler asks the policy about every field it translates. A field the policy refuses makes
the whole request fall back to the resolver path (where the access-control layer reports the
refusal); a field the policy masks is wrapped in the SQL expression the policy returns. Compiled
plans are cached per ``access_class``, so two principals of the same class share plans and two
classes never do.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReadPolicy:
    """Allows everything and masks nothing: the policy until the access-control layer lands."""

    access_class: str = "all"

    def allows(self, type_name: str, field_name: str) -> bool:
        return True

    def mask(self, type_name: str, field_name: str, expression: str) -> str:
        """The SQL expression the caller sees for ``type_name.field_name``."""
        return expression


ALLOW_ALL = ReadPolicy()
