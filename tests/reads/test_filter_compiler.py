"""The one customer-filter compiler (hub.reads.filters), run in PostgreSQL on plain inputs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from hub.compiled import sql
from hub.core.enums import ChannelCode, StageCode
from hub.core.errors import BadUserInput
from hub.core.settings import Settings
from hub.db.rows import fetch_all
from hub.models import CUSTOMERS
from hub.reads.filters import MAX_FILTER_DEPTH, CustomerFilterCompiler
from tests.factories import T0, Factory, minutes

FIELDS = [
    "and_",
    "or_",
    "not_",
    "display_name",
    "stage",
    "channels_used",
    "identity",
    "trait",
    "last_seen_at",
    "created_at",
    "has_consent",
    "segment",
    "computed",
]
SETTINGS = Settings()


def where(**given: Any) -> SimpleNamespace:
    """A filter as the resolvers and the compiled path hand it over: attributes, unset = None."""
    return SimpleNamespace(**{name: given.get(name) for name in FIELDS})


def string(**given: Any) -> SimpleNamespace:
    return SimpleNamespace(
        **{n: given.get(n) for n in ("eq", "contains", "starts_with", "is_null")}
    )


def compiler(personal: Any = lambda what: None, **kwargs: Any) -> CustomerFilterCompiler:
    return CustomerFilterCompiler(SETTINGS, personal=personal, **kwargs)


@pytest.fixture
async def names(db: asyncpg.Connection) -> dict[str, Any]:
    f = Factory(db)
    await f.touchpoint("site", "WEB", "WEBSITE")
    await f.touchpoint("shop", "PHYSICAL", "STORE")
    ana = await f.customer("ana", stage="RETENTION", traits={"tier": "gold"})
    bob = await f.customer("bob", created_at=T0 + minutes(1))
    nobody = await f.customer(None, stage="AWARENESS", created_at=T0 + minutes(2))
    await f.interaction(ana, "site", at=T0)
    await f.interaction(bob, "shop", at=T0)
    return {"ana": ana, "bob": bob, None: nobody}


async def matching(engine: Any, names: dict[str, Any], f: SimpleNamespace) -> set[str | None]:
    rows = await fetch_all(engine, sa.select(CUSTOMERS.c.id).where(compiler().compile(f)))
    by_id = {v: k for k, v in names.items()}
    return {by_id[row["id"]] for row in rows}


async def test_clauses_select_the_matching_customers(engine: Any, names: dict[str, Any]) -> None:
    cases: list[tuple[SimpleNamespace, set[str | None]]] = [
        (where(), {"ana", "bob", None}),
        (where(display_name=string(eq="ana")), {"ana"}),
        (where(display_name=string(contains="%")), set()),
        (where(stage=SimpleNamespace(eq=None, in_=[StageCode.RETENTION], is_null=None)), {"ana"}),
        (where(or_=[]), set()),
        (where(and_=[]), {"ana", "bob", None}),
        (
            where(channels_used=SimpleNamespace(any=None, all=None, none=[ChannelCode.PHYSICAL])),
            {"ana", None},
        ),
        (
            where(trait=SimpleNamespace(key="tier", eq=None, in_=["gold", {"a": 1}], exists=None)),
            {"ana"},
        ),
    ]
    for f, expected in cases:
        assert await matching(engine, names, f) == expected, f


async def test_not_keeps_rows_whose_negated_clause_is_null(
    engine: Any, names: dict[str, Any]
) -> None:
    # display_name = 'ana' is NULL for the customer without a name: NOT must keep that row.
    assert await matching(engine, names, where(not_=where(display_name=string(eq="ana")))) == {
        "bob",
        None,
    }


def test_depth_is_limited() -> None:
    f = where()
    for _ in range(MAX_FILTER_DEPTH):
        f = where(not_=f)
    compiler().compile(f)
    with pytest.raises(BadUserInput):
        compiler().compile(where(not_=f))


def test_personal_clauses_are_announced() -> None:
    seen: list[str] = []
    trait = SimpleNamespace(key="tier", eq="gold", in_=None, exists=None)
    compiler(seen.append).compile(where(trait=trait, stage=None))
    assert seen == []
    compiler(seen.append).compile(where(or_=[where(display_name=string(eq="x"))]))
    assert seen == ["filtering on displayName"]
    personal = SETTINGS.personal_traits[0]
    seen.clear()
    compiler(seen.append).compile(
        where(trait=SimpleNamespace(key=personal, eq=1, in_=None, exists=None))
    )
    assert seen == [f"filtering on the personal trait {personal!r}"]


async def test_rendered_over_an_alias_the_compiled_path_agrees(
    engine: Any, db: asyncpg.Connection, names: dict[str, Any]
) -> None:
    """What the compiled path does with the compiler's output: an alias, rendered to $n text."""
    f = where(
        or_=[
            where(channels_used=SimpleNamespace(any=[ChannelCode.WEB], all=None, none=None)),
            where(display_name=string(is_null=True)),
        ],
        trait=SimpleNamespace(key="tier", eq=None, in_=None, exists=False),
    )
    alias = CUSTOMERS.alias("c9")
    statement = sa.select(alias.c.id).where(compiler(customers=alias).compile(f))
    params = sql.Params()
    text = sql.render(statement, params, {})
    rows = await db.fetch(text, *params.bind({}))
    assert {row["id"] for row in rows} == {names[None]}
    assert await matching(engine, names, f) == {None}
