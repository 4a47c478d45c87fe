"""Identifier normalisation and trait survivorship, tested directly (no server, no database).

Expected values are written out from the documented rules: README.md ("Lookup by identity"),
docs/ingest.md ("Identity resolution", "Traits") and ``hub.core.enums.IDENTITY_KIND_DESCRIPTIONS``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import phonenumbers
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from hub.core.enums import IdentityKind as K
from hub.core.errors import BadUserInput
from hub.identity.identifiers import InvalidIdentifier, normalize_identifier
from hub.identity.traits import is_empty, merge_traits, stamp

# --- e-mail: trimmed, lower-cased, validated; IDN domains meet in one spelling -----------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" Ana@Example.COM ", "ana@example.com"),  # README's lookup example
        ("\tana@example.com\n", "ana@example.com"),
        ("Ana.B+tag@Example.COM", "ana.b+tag@example.com"),
        ("o'brien@example.com", "o'brien@example.com"),
        ("José@Example.com", "josé@example.com"),  # non-ASCII local part, lower-cased too
        ("ana@münchen.de", "ana@münchen.de"),
        ("Ana@MÜNCHEN.DE", "ana@münchen.de"),
        ("ana@xn--mnchen-3ya.de", "ana@münchen.de"),  # punycode and Unicode are one address
    ],
)
def test_email_is_trimmed_lower_cased_and_idn_domains_meet(raw: str, expected: str) -> None:
    assert normalize_identifier(K.EMAIL, raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "ana@",  # README: an invalid identifier answers BAD_USER_INPUT
        "not-an-email",
        "ana@@example.com",
        "a b@example.com",
        "ana..b@example.com",
        "ana@example",  # no dot in the domain
        "ana@example.com.",
        "",
        "   ",
    ],
)
def test_invalid_email_is_bad_user_input_naming_the_value(raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_identifier(K.EMAIL, raw)
    assert caught.value.extensions == {"code": "BAD_USER_INPUT"}
    assert caught.value.message.startswith(f"{raw!r} is not a valid e-mail address: ")


def test_identifiers_longer_than_256_characters_are_refused_before_parsing() -> None:
    assert normalize_identifier(K.CRM_ID, "x" * 256) == "x" * 256
    for kind in K:
        with pytest.raises(InvalidIdentifier, match=r"^identifiers are at most 256 characters$"):
            normalize_identifier(kind, "x" * 257)


# --- phone: E.164; a national number needs the default region -----------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+44 20 7946 0958", None, "+442079460958"),  # the module docstring's pair
        ("+442079460958", None, "+442079460958"),
        ("+44 (0) 20 7946 0958", None, "+442079460958"),
        ("+49 151 12345678", None, "+4915112345678"),  # the EMAIL/PHONE enum description
        ("020 7946 0958", "GB", "+442079460958"),  # HUB_DEFAULT_PHONE_REGION=GB
        ("0151 12345678", "DE", "+4915112345678"),
        ("(650) 253-0000", "US", "+16502530000"),
        ("+1 650 253 0000", "GB", "+16502530000"),  # an explicit +country beats the region
        ("00 44 20 7946 0958", "DE", "+442079460958"),  # the region's international prefix
    ],
)
def test_phone_becomes_e164(raw: str, region: str | None, expected: str) -> None:
    assert normalize_identifier(K.PHONE, raw, region) == expected


def test_national_phone_without_a_default_region_asks_for_the_international_form() -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_identifier(K.PHONE, "020 7946 0958")
    assert caught.value.message == (
        "'020 7946 0958' is not a valid phone number (give it in international form, +country code)"
    )


@pytest.mark.parametrize("raw", ["12345", "0000000000", "not a phone", "", "+44 20 7946 095"])
def test_invalid_phone_is_bad_user_input(raw: str) -> None:
    with pytest.raises(BadUserInput, match="is not a valid phone number"):
        normalize_identifier(K.PHONE, raw, "GB")


# --- social handles: platform:handle, lower-cased, "@" dropped, twitter is x ----------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("instagram:ana", "instagram:ana"),  # the enum description's example
        ("Instagram:@Ana.B", "instagram:ana.b"),
        ("TikTok: @Ana_B", "tiktok:ana_b"),
        (" linkedin:ana-b ", "linkedin:ana-b"),
        ("twitter:ana", "x:ana"),
        ("X:ana", "x:ana"),
    ],
)
def test_social_handle_is_platform_colon_handle(raw: str, expected: str) -> None:
    assert normalize_identifier(K.SOCIAL_HANDLE, raw) == expected


@pytest.mark.parametrize(
    "raw", ["ana", "myspace:ana", "instagram:", "instagram:@", "instagram:ana b", ":ana"]
)
def test_invalid_social_handle_explains_the_form(raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_identifier(K.SOCIAL_HANDLE, raw)
    assert caught.value.message == (
        f"{raw!r} is not a social handle: write platform:handle, e.g. instagram:ana.b, with "
        "platform one of facebook, instagram, linkedin, tiktok, twitter, whatsapp, x, youtube"
    )


# --- opaque ids (cookie, device, CRM, loyalty): trimmed, otherwise kept as given -----------------

OPAQUE_KINDS = [K.DEVICE_ID, K.COOKIE, K.CRM_ID, K.LOYALTY_ID]


@pytest.mark.parametrize("kind", OPAQUE_KINDS)
def test_opaque_ids_are_trimmed_and_keep_their_case(kind: K) -> None:
    # Another system's id: only the surrounding whitespace is ours to drop.
    assert normalize_identifier(kind, "  CRM-0042-Ab \n") == "CRM-0042-Ab"


@pytest.mark.parametrize("kind", OPAQUE_KINDS)
def test_empty_opaque_id_is_refused(kind: K) -> None:
    with pytest.raises(InvalidIdentifier, match=f"^an empty {kind.value} is not an identifier$"):
        normalize_identifier(kind, " \t ")


# --- normalisation is idempotent (stored values looked up again must meet themselves) -----------

_LOCAL = st.text(alphabet="abcXYZ09._+-'é", min_size=1, max_size=20)
_DOMAIN = st.sampled_from(["example.com", "EXAMPLE.COM", "münchen.de", "xn--mnchen-3ya.de"])
_PAD = st.sampled_from(["", " ", "\t", " \n "])
_PHONE = st.sampled_from(
    [
        ("+44 20 7946 0958", None),
        ("020 7946 0958", "GB"),
        ("0151 12345678", "DE"),
        ("(650) 253-0000", "US"),
        ("+33 1 23 45 67 89", "US"),
    ]
)
_HANDLE = st.tuples(
    st.sampled_from(["Instagram", "twitter", "X", "tiktok", "YouTube"]),
    st.sampled_from(["", "@", " @"]),
    st.text(alphabet="abAB09._-", min_size=1, max_size=15),
)


def _identifier_inputs() -> st.SearchStrategy[tuple[K, str, str | None]]:
    emails = st.builds(lambda p, loc, d: (K.EMAIL, f"{p}{loc}@{d}{p}", None), _PAD, _LOCAL, _DOMAIN)
    phones = st.builds(lambda pr: (K.PHONE, pr[0], pr[1]), _PHONE)
    handles = st.builds(lambda h: (K.SOCIAL_HANDLE, f"{h[0]}:{h[1]}{h[2]}", None), _HANDLE)
    opaque = st.builds(
        lambda kind, p, v: (kind, f"{p}{v}{p}", None),
        st.sampled_from(OPAQUE_KINDS),
        _PAD,
        st.text(alphabet="abcXYZ019-_:", min_size=1, max_size=30),
    )
    return st.one_of(emails, phones, handles, opaque)


def _normalises_to_a_fixed_point(
    normalise: Callable[[K, str, str | None], str], kind: K, raw: str, region: str | None
) -> bool:
    """True when normalising the normal form again changes nothing (or the input is invalid)."""
    try:
        once = normalise(kind, raw, region)
    except BadUserInput:
        return True
    # The stored form must be found again with or without a default region configured.
    try:
        return normalise(kind, once, None) == once and normalise(kind, once, "GB") == once
    except BadUserInput:
        return False


@settings(max_examples=300, deadline=None)
@given(_identifier_inputs())
def test_normalisation_is_idempotent(case: tuple[K, str, str | None]) -> None:
    assert _normalises_to_a_fixed_point(normalize_identifier, *case)


def test_idempotence_check_catches_a_normaliser_that_is_not() -> None:
    """Negative control: the property above can fail. A normaliser that stores phones in the
    national form ("020 7946 0958") cannot find them again without their region."""

    def national_phones(kind: K, value: str, region: str | None) -> str:
        result = normalize_identifier(kind, value, region)
        if kind is not K.PHONE:
            return result
        number = phonenumbers.parse(result)
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)

    counterexample = find(
        _identifier_inputs(),
        lambda case: not _normalises_to_a_fixed_point(national_phones, *case),
        settings=settings(suppress_health_check=list(HealthCheck), database=None),
    )
    assert counterexample[0] is K.PHONE


# --- trait survivorship (docs/ingest.md "Traits") -------------------------------------------------

OLD = "2024-01-01T00:00:00.000000Z"
NEW = "2024-06-01T00:00:00.000000Z"
RULES = {"first_order_at": "FIRST", "signup_source": "FIRST"}  # the documented default


def test_stamps_are_utc_iso8601_with_microseconds() -> None:
    berlin = timezone(timedelta(hours=2))
    assert stamp(datetime(2024, 6, 1, 14, 30, 5, 7, tzinfo=berlin)) == "2024-06-01T12:30:05.000007Z"
    assert stamp(datetime(2024, 6, 1, 12, 0, tzinfo=UTC)) == "2024-06-01T12:00:00.000000Z"


@pytest.mark.parametrize("value", [None, "", [], {}])
def test_empty_values_are_empty(value: object) -> None:
    assert is_empty(value)


@pytest.mark.parametrize("value", [0, False, "0", " ", [None], {"a": None}])
def test_falsy_but_real_values_are_not_empty(value: object) -> None:
    assert not is_empty(value)


@pytest.mark.parametrize("value", [None, "", [], {}])
@pytest.mark.parametrize("trait", ["city", "first_order_at"])
def test_an_empty_value_never_overwrites(value: object, trait: str) -> None:
    traits, stamps = merge_traits(
        {trait: "Leeds"}, {trait: OLD}, {trait: value}, {trait: NEW}, RULES
    )
    assert (traits, stamps) == ({trait: "Leeds"}, {trait: OLD})


def test_latest_rule_newer_wins_older_loses_tie_keeps_current() -> None:
    current, current_stamps = {"city": "Leeds"}, {"city": OLD}
    newer = merge_traits(current, current_stamps, {"city": "York"}, {"city": NEW}, RULES)
    assert newer == ({"city": "York"}, {"city": NEW})
    current, current_stamps = {"city": "Leeds"}, {"city": NEW}
    older = merge_traits(current, current_stamps, {"city": "York"}, {"city": OLD}, RULES)
    assert older == ({"city": "Leeds"}, {"city": NEW})
    tie = merge_traits(current, current_stamps, {"city": "York"}, {"city": NEW}, RULES)
    assert tie == ({"city": "Leeds"}, {"city": NEW})


def test_first_rule_older_wins_newer_loses_tie_keeps_current() -> None:
    current, current_stamps = {"signup_source": "web"}, {"signup_source": NEW}
    older = merge_traits(
        current, current_stamps, {"signup_source": "store"}, {"signup_source": OLD}, RULES
    )
    assert older == ({"signup_source": "store"}, {"signup_source": OLD})
    current_stamps = {"signup_source": OLD}
    newer = merge_traits(
        current, current_stamps, {"signup_source": "store"}, {"signup_source": NEW}, RULES
    )
    assert newer == ({"signup_source": "web"}, {"signup_source": OLD})
    tie = merge_traits(
        current, current_stamps, {"signup_source": "store"}, {"signup_source": OLD}, RULES
    )
    assert tie == ({"signup_source": "web"}, {"signup_source": OLD})


def test_a_missing_stamp_counts_as_older_than_any_stamp() -> None:
    # LATEST: an unstamped incoming value loses to a stamped one, and an unstamped stored one
    # gives way to a stamped incoming one.
    assert merge_traits({"city": "Leeds"}, {"city": OLD}, {"city": "York"}, {}, RULES) == (
        {"city": "Leeds"},
        {"city": OLD},
    )
    assert merge_traits({"city": "Leeds"}, {}, {"city": "York"}, {"city": OLD}, RULES) == (
        {"city": "York"},
        {"city": OLD},
    )
    # FIRST: the unstamped incoming value counts as the oldest and is kept.
    assert merge_traits(
        {"first_order_at": "2024-02-02"},
        {"first_order_at": OLD},
        {"first_order_at": "2023"},
        {},
        RULES,
    ) == ({"first_order_at": "2023"}, {"first_order_at": None})


def test_new_traits_are_added_and_an_empty_stored_value_is_filled_whatever_the_stamps() -> None:
    traits, stamps = merge_traits(
        {"city": "", "tier": "gold"},
        {"city": NEW, "tier": OLD},
        {"city": "York", "phone_opt_in": True},
        {"city": OLD},
        RULES,
    )
    assert traits == {"city": "York", "tier": "gold", "phone_opt_in": True}
    assert stamps == {"city": OLD, "tier": OLD, "phone_opt_in": None}


def test_merging_traits_leaves_its_inputs_alone() -> None:
    traits, stamps = {"city": "Leeds"}, {"city": OLD}
    incoming, incoming_stamps = {"city": "York", "tier": "gold"}, {"city": NEW, "tier": NEW}
    merge_traits(traits, stamps, incoming, incoming_stamps, RULES)
    assert (traits, stamps) == ({"city": "Leeds"}, {"city": OLD})
    assert (incoming, incoming_stamps) == (
        {"city": "York", "tier": "gold"},
        {"city": NEW, "tier": NEW},
    )
