"""The JSON walker and the key patterns (hub.access.masking), and masking by construction: a
schema with a String/JSON field that says nothing about personal data does not build."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry
from strawberry.scalars import JSON

from hub.access.masking import MASK, MAX_DEPTH, PersonalKeys, mask_json, personal_keys
from hub.core.settings import Settings
from hub.schema.permissions import (
    PersonalData,
    UndeclaredPersonalData,
    check_personal_fields,
    json_mask,
    not_personal,
    undeclared_text_fields,
)

KEYS = personal_keys(Settings())


@pytest.mark.parametrize(
    "key",
    [
        "email",
        "Email",
        "EMAIL",
        "e_mail",
        "e-mail",
        "eMail",
        "contactEmail",
        "work_email_address",
        "Phone_Number",
        "phoneNumber",
        "mobile",
        "tel",
        "IP",
        "ip_address",
        "IPAddress",
        "clientIp",
        "address",
        "homeAddress",
        "street",
        "postcode",
        "postal_code",
        "zip",
        "name",
        "Name",
        "first_name",
        "firstName",
        "lastname",
        "FullName",
        "display_name",
        "surname",
        "birth_date",
        "birthDate",
        "dateOfBirth",
        "dob",
        "birthday",
        "ssn",
        "national_id",
        "passportNumber",
        "card_number",
        "iban",
        "lat",
        "longitude",
        "device_id",
    ],
)
def test_personal_keys_in_any_case_and_separator(key: str) -> None:
    assert KEYS.is_personal(key), key


@pytest.mark.parametrize(
    "key",
    ["tier", "city", "hotel", "product_name", "campaign", "mailing", "Telemetry", "zipper", "id"],
)
def test_other_keys_are_not_personal(key: str) -> None:
    assert not KEYS.is_personal(key), key


def test_a_personal_value_is_masked_whatever_its_type_at_any_depth() -> None:
    value = {
        "Email": "ana@example.com",
        "contact": {"email": "ana@example.com", "Phone_Number": 351912345678, "preferred": "phone"},
        "Contact": {"Phone_Number": "+351 912 345 678"},
        "address": {"street": "Rua 1", "city": "Lisboa"},
        "friends": [{"e_mail": "bo@example.com", "since": 2020}, {"name": None, "tags": ["vip"]}],
        "dob": ["1990", "01"],
        "tier": "gold",
        "score": 7.5,
        "active": True,
        "nothing": None,
    }
    assert mask_json(value, KEYS) == {
        "Email": MASK,
        "contact": {"email": MASK, "Phone_Number": MASK, "preferred": "phone"},
        "Contact": {"Phone_Number": MASK},
        "address": MASK,
        "friends": [{"e_mail": MASK, "since": 2020}, {"name": MASK, "tags": ["vip"]}],
        "dob": MASK,
        "tier": "gold",
        "score": 7.5,
        "active": True,
        "nothing": None,
    }


def test_identifiers_in_other_text_take_the_identifier_forms() -> None:
    value = {
        "note": "write to Ana.Silva@example.com or call +351 912 345 678 before 2026-12-06",
        "tags": ["bo@example.org", "vip", "+44 20 7946 0958"],
        "order": "A-1234567",
        "ana@example.com": True,
    }
    assert mask_json(value, KEYS) == {
        "note": f"write to A{MASK}@example.com or call {MASK}78 before 2026-12-06",
        "tags": [f"b{MASK}@example.org", "vip", f"{MASK}58"],
        "order": "A-1234567",
        f"a{MASK}@example.com": True,
    }
    assert mask_json("ana@example.com", KEYS) == f"a{MASK}@example.com"
    assert mask_json([1, None, "x"], KEYS) == [1, None, "x"]


def test_deeper_than_the_cap_is_masked_whole() -> None:
    deep: Any = {"tier": "gold"}
    for _ in range(MAX_DEPTH + 5):
        deep = {"next": deep}
    masked = mask_json(deep, KEYS)
    for _ in range(MAX_DEPTH):
        masked = masked["next"]
    assert masked == MASK


def test_the_walk_is_linear_in_the_value() -> None:
    # 20,000 nodes: one visit each (a quadratic walk would not finish within the test timeout).
    wide = {"rows": [{"email": f"u{i}@example.com", "n": i} for i in range(10_000)]}
    masked = mask_json(wide, KEYS)
    assert masked["rows"][9_999] == {"email": MASK, "n": 9_999}
    assert sum(1 for row in masked["rows"] if row["email"] == MASK) == 10_000


def test_whole_key_patterns_match_only_whole_keys() -> None:
    keys = PersonalKeys(["=nick", "loyalty id"])
    assert keys.is_personal("nick") and keys.is_personal("NICK")
    assert not keys.is_personal("nick_name_length")
    assert keys.is_personal("loyaltyId") and keys.is_personal("old_loyalty_id_v2")
    assert not keys.is_personal("email")  # only the patterns given


def test_settings_extend_the_defaults() -> None:
    settings = Settings(personal_keys="loyalty id, =nick", personal_traits=["tier"])
    keys = personal_keys(settings)
    value = {"loyaltyId": "L-1", "nick": "ace", "nickname_hint": "a", "tier": "gold", "email": "x"}
    assert mask_json(value, keys) == {
        "loyaltyId": MASK,
        "nick": MASK,
        "nickname_hint": "a",
        "tier": MASK,  # deprecated HUB_PERSONAL_TRAITS still counts, as a whole key
        "email": MASK,  # the defaults stay
    }
    assert settings.personal_keys == ["loyalty id", "=nick"]


# ---- masking by construction ----


@strawberry.type(description="A type that forgets to say.")
class Leaky:
    tier: str = strawberry.field(description="Declared.", metadata=not_personal("a level"))
    note: str = strawberry.field(description="Masked.", extensions=[PersonalData()])
    profile: JSON = strawberry.field(description="Masked.", extensions=[PersonalData(json_mask)])
    nickname: str = strawberry.field(description="Undeclared.")
    extras: list[JSON] = strawberry.field(description="Undeclared list.")
    count: int = strawberry.field(description="Not text: not checked.")


@strawberry.type(description="The root.")
class LeakyQuery:
    @strawberry.field(description="One.")
    def leaky(self) -> Leaky:
        return Leaky(tier="t", note="n", profile={}, nickname="x", extras=[], count=1)

    @strawberry.field(description="Undeclared root text.")
    def motto(self) -> str:
        return "m"


def test_a_schema_with_an_undeclared_text_field_does_not_build() -> None:
    schema = strawberry.Schema(query=LeakyQuery)
    assert undeclared_text_fields(schema._schema) == [
        "Leaky.extras",
        "Leaky.nickname",
        "LeakyQuery.motto",
    ]
    with pytest.raises(UndeclaredPersonalData, match=r"undeclared: Leaky\.extras, Leaky\.nickn"):
        check_personal_fields(schema._schema)


def test_an_empty_reason_is_no_declaration() -> None:
    @strawberry.type(description="Root.")
    class Query:
        blank: str = strawberry.field(description="Blank.", metadata=not_personal("  "))

    assert undeclared_text_fields(strawberry.Schema(query=Query)._schema) == ["Query.blank"]


def test_the_hub_schema_declares_every_text_field() -> None:
    from hub.graphql import schema

    assert undeclared_text_fields(schema._schema) == []
