"""Page sizes and directions of every list (the cursor encoding lives in ``hub.core.ids``)."""

from __future__ import annotations

from hub.core.errors import BadUserInput
from hub.core.settings import Settings


def page_size(
    settings: Settings,
    first: int | None,
    last: int | None = None,
    after: str | None = None,
    before: str | None = None,
) -> tuple[int, bool]:
    """Validate paging arguments; returns (size, backwards)."""
    if first is not None and last is not None:
        raise BadUserInput("pass either `first` or `last`, not both")
    if after is not None and before is not None:
        raise BadUserInput("pass either `after` or `before`, not both")
    if (last is not None and after is not None) or (first is not None and before is not None):
        raise BadUserInput("page forwards with `first`/`after`, backwards with `last`/`before`")
    size = first if first is not None else last
    backwards = last is not None or before is not None
    if size is None:
        size = settings.default_page_size
    if size < 0:
        raise BadUserInput("`first` and `last` must not be negative")
    if size > settings.max_page_size:
        raise BadUserInput(
            f"at most {settings.max_page_size} items per page; ask for fewer and page on",
            maxPageSize=settings.max_page_size,
        )
    return size, backwards
