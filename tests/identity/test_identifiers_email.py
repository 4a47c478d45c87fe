"""The fast path of ``normalize_email`` decides exactly as ``email_validator`` does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.errors import BadUserInput
from hub.identity.identifiers import _validated_email, normalize_email

ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
LOCAL = st.text(alphabet=ATEXT + '."\\ @é', min_size=0, max_size=70)
DOMAINS = st.sampled_from(
    [
        "example.com",
        "EXAMPLE.COM",
        "bench.example",
        "mail.co.uk",
        "localhost",
        "test",
        "x.invalid",
        "a..b.com",
        "-bad.com",
        "bad-.com",
        "123.456",
        "xn--bcher-kva.example",
        "exa_mple.com",
        "com",
        "a." + "b" * 63 + ".com",
        "a." + "b" * 64 + ".com",
        "münchen.de",
        "",
        " example.com",
        "example.com.",
    ]
)


def _outcome(normalize: object, value: str) -> tuple[str, str]:
    try:
        return ("ok", normalize(value))  # type: ignore[operator]
    except BadUserInput as error:
        return ("error", error.message)


@settings(max_examples=400, deadline=None)
@given(local=LOCAL, domain=DOMAINS, pad=st.sampled_from(["", " ", "  \t"]))
def test_fast_and_full_validation_agree(local: str, domain: str, pad: str) -> None:
    value = f"{pad}{local}@{domain}{pad}"
    normalize_email.cache_clear()
    assert _outcome(normalize_email, value) == _outcome(_validated_email, value)


@pytest.mark.parametrize(
    "value",
    [
        " Ana.B+tag@Example.COM ",
        "o'brien@example.com",
        "a" * 64 + "@example.com",
        "a" * 65 + "@example.com",
        "ana@@example.com",
        ".ana@example.com",
        "ana.@example.com",
        "an..a@example.com",
        '"ana"@example.com',
        "ana@localhost",
        "ana@example",
        "ana",
    ],
)
def test_known_addresses_agree(value: str) -> None:
    normalize_email.cache_clear()
    assert _outcome(normalize_email, value) == _outcome(_validated_email, value)
