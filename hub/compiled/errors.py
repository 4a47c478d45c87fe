"""The one way the compiled read path declines a query."""

from __future__ import annotations


class NotCompilable(Exception):
    """The query uses something the compiler does not translate: use the resolver path."""
