"""Fictional people: names, where they live, how they like to shop, and their identifiers.

Identifier values are generated directly in the canonical form ``hub.identity.identifiers`` produces
(lower-case e-mails on reserved example domains, E.164 mobile numbers that ``phonenumbers``
accepts, ``platform:handle`` social handles), so they match what live ingest would store.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

from hub.core.enums import ChannelCode, IdentityKind
from hub.seeds.catalog import BUSINESS_LINES, STORE_CITIES
from hub.seeds.dice import Dice, Weighted
from hub.seeds.timeline import DAY, EPOCH, HOUR


@dataclass(frozen=True, slots=True)
class Country:
    code: str
    weight: float
    language: str
    currency: str
    # (city, weight); cities named in catalog.STORE_CITIES have a Larkspur store.
    cities: tuple[tuple[str, float], ...]
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]


COUNTRIES: tuple[Country, ...] = (
    Country(
        "GB",
        0.48,
        "en",
        "GBP",
        (
            ("London", 5),
            ("Manchester", 2),
            ("Glasgow", 1.5),
            ("Birmingham", 1.5),
            ("Leeds", 1),
            ("Bristol", 1),
        ),
        (
            "Oliver",
            "Amelia",
            "George",
            "Isla",
            "Harry",
            "Ava",
            "Noah",
            "Mia",
            "Jack",
            "Grace",
            "Priya",
            "Mohammed",
            "Chloe",
            "Aaliyah",
            "Ethan",
            "Sophie",
            "James",
            "Zara",
            "Leo",
            "Emily",
        ),
        (
            "Smith",
            "Jones",
            "Taylor",
            "Brown",
            "Williams",
            "Wilson",
            "Evans",
            "Patel",
            "Khan",
            "Thomas",
            "Roberts",
            "Walker",
            "Wright",
            "Clarke",
            "Hughes",
            "Edwards",
            "Green",
            "Hall",
            "Wood",
            "Ahmed",
        ),
    ),
    Country(
        "IE",
        0.1,
        "en",
        "EUR",
        (("Dublin", 4), ("Cork", 1.5), ("Galway", 1)),
        (
            "Seán",
            "Aoife",
            "Conor",
            "Niamh",
            "Cian",
            "Saoirse",
            "Darragh",
            "Ciara",
            "Oisín",
            "Róisín",
            "Liam",
            "Emma",
        ),
        (
            "Murphy",
            "Kelly",
            "Byrne",
            "Ryan",
            "O'Brien",
            "Walsh",
            "O'Sullivan",
            "Doyle",
            "McCarthy",
            "Gallagher",
            "Kennedy",
            "Lynch",
        ),
    ),
    Country(
        "DE",
        0.16,
        "de",
        "EUR",
        (("Berlin", 3), ("Hamburg", 2), ("München", 2), ("Köln", 1.5)),
        (
            "Lukas",
            "Lena",
            "Jonas",
            "Hannah",
            "Felix",
            "Mia",
            "Maximilian",
            "Sophie",
            "Paul",
            "Emilia",
            "Jürgen",
            "Ayşe",
        ),
        (
            "Müller",
            "Schmidt",
            "Schneider",
            "Fischer",
            "Weber",
            "Meyer",
            "Wagner",
            "Becker",
            "Hoffmann",
            "Schäfer",
            "Koch",
            "Öztürk",
        ),
    ),
    Country(
        "FR",
        0.14,
        "fr",
        "EUR",
        (("Paris", 4), ("Lyon", 1.5), ("Marseille", 1.5), ("Bordeaux", 1)),
        (
            "Gabriel",
            "Louise",
            "Raphaël",
            "Jade",
            "Léo",
            "Ambre",
            "Hugo",
            "Chloé",
            "Arthur",
            "Inès",
            "Théo",
            "Manon",
        ),
        (
            "Martin",
            "Bernard",
            "Dubois",
            "Thomas",
            "Robert",
            "Richard",
            "Petit",
            "Durand",
            "Leroy",
            "Moreau",
            "Lefèvre",
            "Benali",
        ),
    ),
    Country(
        "ES",
        0.12,
        "es",
        "EUR",
        (("Madrid", 4), ("Barcelona", 3), ("Valencia", 1.5), ("Sevilla", 1)),
        (
            "Hugo",
            "Lucía",
            "Martín",
            "Sofía",
            "Mateo",
            "Martina",
            "Pablo",
            "María",
            "Álvaro",
            "Paula",
            "Daniel",
            "Carmen",
        ),
        (
            "García",
            "Fernández",
            "González",
            "Rodríguez",
            "López",
            "Martínez",
            "Sánchez",
            "Pérez",
            "Gómez",
            "Martín",
            "Jiménez",
            "Ruiz",
        ),
    ),
)
_COUNTRIES = Weighted((country, country.weight) for country in COUNTRIES)
_CITIES = {country.code: Weighted(country.cities) for country in COUNTRIES}

# Mobile ranges ``phonenumbers`` validates with seven more digits (tests check a sample).
_MOBILE_PREFIXES: dict[str, tuple[str, ...]] = {
    "GB": ("+44771", "+44772", "+44773", "+44774", "+44775", "+44776", "+44777"),
    "IE": ("+35383", "+35385", "+35386", "+35387", "+35389"),
    "DE": ("+49170", "+49171", "+49172", "+49173", "+49175", "+49176", "+49177", "+49178"),
    "FR": ("+3360", "+3361", "+3362", "+3364", "+3365", "+3366", "+3367", "+3368"),
    "ES": ("+3460", "+3461", "+3462", "+3463", "+3464", "+3465", "+3466", "+3467"),
}
_UNIX_EPOCH = int(EPOCH.timestamp())

# Reserved example domains (RFC 2606/6761): believable addresses that can reach nobody.
EMAIL_DOMAINS = (
    "inbox.example",
    "mailbox.example",
    "post.example",
    "webmail.example",
    "example.com",
    "example.net",
    "example.org",
)
SOCIAL_PLATFORMS = ("instagram", "facebook", "tiktok", "x", "youtube")
TIERS = Weighted((("bronze", 50), ("silver", 30), ("gold", 15), ("platinum", 5)))
AGE_BANDS = Weighted(
    (("18-24", 14), ("25-34", 26), ("35-44", 24), ("45-54", 18), ("55-64", 11), ("65+", 7))
)

# Identity kinds as plain strings: the hot loop stores and hashes these millions of times.
EMAIL = IdentityKind.EMAIL.value
PHONE = IdentityKind.PHONE.value
DEVICE_ID = IdentityKind.DEVICE_ID.value
COOKIE = IdentityKind.COOKIE.value
CRM_ID = IdentityKind.CRM_ID.value
LOYALTY_ID = IdentityKind.LOYALTY_ID.value
SOCIAL_HANDLE = IdentityKind.SOCIAL_HANDLE.value

_STORE_BY_CITY = {city.capitalize(): f"store.{city}" for city in STORE_CITIES}


def ascii_slug(name: str) -> str:
    """The part of a name an e-mail would use: Schäfer → schafer, O'Brien → obrien."""
    folded = unicodedata.normalize("NFKD", name.replace("ß", "ss"))
    return "".join(ch for ch in folded.lower() if ch.isascii() and ch.isalnum())


@dataclass(slots=True)
class Person:
    """Who a demo customer is and how they behave; the journey simulator reads these flags."""

    country: Country
    city: str
    home_store: str | None  # catalog key of the store in their city
    first_name: str | None  # None: an anonymous visitor we only know by cookies or devices
    last_name: str | None
    app: str | None  # "ios" / "android" when they use the app
    social: tuple[str, ...]  # platforms they follow us on
    favourite_line: str
    store_goer: bool
    newsletter: bool
    loyalty_member: bool
    sms_opt_in: bool
    identities: list[tuple[str, str]] = field(default_factory=list)
    traits: dict[str, Any] = field(default_factory=dict)

    @property
    def display_name(self) -> str | None:
        if self.first_name is None:
            return None
        return f"{self.first_name} {self.last_name}"


class PersonFactory:
    """Makes people; identifier values are unique per kind within ``taken`` (updated in place)."""

    def __init__(self, dice: Dice, taken: dict[str, set[str]]) -> None:
        self.dice = dice
        self.taken = taken
        for kind in IdentityKind:
            taken.setdefault(kind.value, set())
        self._slugs: dict[str, str] = {}

    def make(self, *, anonymous: bool, first_visit: int) -> Person:
        """A new person who first met Larkspur at ``first_visit`` (seconds after the epoch)."""
        dice = self.dice
        chance = dice.chance
        country = _COUNTRIES.draw(dice)
        city = _CITIES[country.code].draw(dice)
        home_store = _STORE_BY_CITY.get(city)
        app_roll = dice.random()
        person = Person(
            country=country,
            city=city,
            home_store=home_store,
            first_name=None if anonymous else dice.pick(country.first_names),
            last_name=None if anonymous else dice.pick(country.last_names),
            app="ios" if app_roll < 0.25 else "android" if app_roll < 0.45 else None,
            social=tuple(p for p in SOCIAL_PLATFORMS if chance(0.18)),
            favourite_line=dice.pick(BUSINESS_LINES),
            store_goer=home_store is not None and chance(0.6),
            newsletter=not anonymous and chance(0.7),
            loyalty_member=not anonymous and chance(0.5),
            sms_opt_in=not anonymous and chance(0.35),
        )
        self._add_identities(person, _UNIX_EPOCH + first_visit)
        self._add_traits(person)
        return person

    # -- identifiers -------------------------------------------------------------------------

    def _claim(self, person: Person, kind: str, value: str) -> bool:
        seen = self.taken[kind]
        if value in seen:
            return False
        seen.add(value)
        person.identities.append((kind, value))
        return True

    def _add_identities(self, person: Person, first_visit_unix: int) -> None:
        chance = self.dice.chance
        self._cookie(person, first_visit_unix)
        for _ in range(chance(0.35) + chance(0.1)):  # other browsers, cleared cookies
            self._cookie(person, first_visit_unix + self.dice.between(DAY, 200 * DAY))
        if person.app:
            self._device(person, person.app)
            if chance(0.12):  # a new phone: a second install
                self._device(person, person.app)
        for platform in person.social:
            self._social(person, platform)
        if person.first_name is None:
            if len(person.identities) < 2:
                self._cookie(person, first_visit_unix + self.dice.between(HOUR, 30 * DAY))
            return
        self._email(person)
        if chance(0.18):
            self._email(person)
        if person.sms_opt_in or chance(0.55):
            self._phone(person)
        if person.loyalty_member:
            self._numbered(person, LOYALTY_ID, "LSP", 10)
        if chance(0.8):
            self._numbered(person, CRM_ID, "CRM-", 8)

    def _slug(self, name: str) -> str:
        slug = self._slugs.get(name)
        if slug is None:
            slug = self._slugs[name] = ascii_slug(name)
        return slug

    def _email(self, person: Person) -> None:
        dice = self.dice
        assert person.first_name is not None and person.last_name is not None
        first, last = self._slug(person.first_name), self._slug(person.last_name)
        style = dice.between(0, 3)
        if style == 0:
            local = f"{first}.{last}"
        elif style == 1:
            local = f"{first}{last}{dice.between(60, 99)}"
        elif style == 2:
            local = f"{first[0]}.{last}"
        else:
            local = f"{first}_{last[0]}"
        domain = dice.pick(EMAIL_DOMAINS)
        while not self._claim(person, EMAIL, f"{local}@{domain}"):
            local = f"{local}{dice.between(0, 9)}"

    def _phone(self, person: Person) -> None:
        dice = self.dice
        prefixes = _MOBILE_PREFIXES[person.country.code]
        while not self._claim(
            person, PHONE, f"{dice.pick(prefixes)}{dice.between(0, 9_999_999):07d}"
        ):
            pass

    def _cookie(self, person: Person, first_visit_unix: int) -> None:
        # The form of a Google Analytics client id: a random number and the first visit's time.
        dice = self.dice
        while not self._claim(
            person, COOKIE, f"GA1.1.{dice.between(10**9, 10**10 - 1)}.{first_visit_unix}"
        ):
            pass

    def _device(self, person: Person, platform: str) -> None:
        text = self.dice.uuid4()
        if platform == "ios":  # identifierForVendor: an upper-case UUID
            text = text.upper()
            value = f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
        else:  # ANDROID_ID: 64 bits as 16 hex digits
            value = text[:16]
        self._claim(person, DEVICE_ID, value)

    def _social(self, person: Person, platform: str) -> None:
        dice = self.dice
        if person.first_name is not None and person.last_name is not None:
            base = f"{self._slug(person.first_name)}.{self._slug(person.last_name)}"
        else:
            base = dice.pick(("style", "home", "tech", "glow", "city", "daily", "the"))
            base += dice.pick(("lover", "fan", "hunter", "notes", "diary", "life"))
        handle = base
        while not self._claim(person, SOCIAL_HANDLE, f"{platform}:{handle}"):
            handle = f"{base}{dice.between(1, 9_999)}"

    def _numbered(self, person: Person, kind: str, prefix: str, digits: int) -> None:
        dice = self.dice
        while not self._claim(
            person, kind, f"{prefix}{dice.between(0, 10**digits - 1):0{digits}d}"
        ):
            pass

    # -- traits ------------------------------------------------------------------------------

    def _add_traits(self, person: Person) -> None:
        traits: dict[str, Any] = {
            "city": person.city,
            "country": person.country.code,
            "preferred_language": person.country.language,
            "favourite_line": person.favourite_line,
            "preferred_channel": (
                ChannelCode.MOBILE.value
                if person.app
                else ChannelCode.PHYSICAL.value
                if person.store_goer
                else ChannelCode.WEB.value
            ),
        }
        if person.first_name is not None:
            traits["age_band"] = AGE_BANDS.draw(self.dice)
            traits["marketing_opt_in"] = person.newsletter
        if person.loyalty_member:
            traits["tier"] = TIERS.draw(self.dice)
        person.traits = traits
