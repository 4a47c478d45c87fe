"""Every analytics query against a recount in plain Python over the rows the test wrote.

The dataset is deliberately varied: several business lines (and touchpoints with none), all six
channels, inbound and outbound, gaps from minutes to days, stage changes forward, backward and
looping, conversations answered, unanswered, resolved and open. The recounts below share no
code with the SQL: they read the same rows the test inserted.
"""

from __future__ import annotations

import itertools
import random
import statistics
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from hub.core.ids import to_global_id
from tests.conftest import GraphQLClient, StatementCounter
from tests.factories import T0, Factory, zulu

STAGES = ["AWARENESS", "CONSIDERATION", "PURCHASE", "POST_PURCHASE", "RETENTION"]
# (name, channel, kind, business line)
TOUCHPOINTS = [
    ("Retail site", "WEB", "WEBSITE", "retail"),
    ("Bank site", "WEB", "WEBSITE", "bank"),
    ("Bank chat", "WEB", "LIVE_CHAT", "bank"),
    ("Retail app", "MOBILE", "MOBILE_APP", "retail"),
    ("Contact centre", "ASSISTED", "VOICE", "retail"),
    ("WhatsApp", "SOCIAL", "RICH_MESSAGING", None),
    ("Instagram", "SOCIAL", "SOCIAL_PAGE", None),
    ("Flagship store", "PHYSICAL", "STORE", "retail"),
    ("Newsletter", "OUTBOUND", "CAMPAIGN", None),
]
TOUCHPOINT = {name: (channel, kind, line) for name, channel, kind, line in TOUCHPOINTS}
CONVERSATIONAL = ["Bank chat", "Contact centre", "WhatsApp", "Instagram"]
MEASURED_KINDS = {"LIVE_CHAT", "CHATBOT", "EMAIL", "SMS", "RICH_MESSAGING", "VOICE", "VIDEO"}


@dataclass
class Row:
    id: uuid.UUID
    customer: uuid.UUID
    touchpoint: str
    at: datetime
    direction: str
    sentiment: float | None
    conversation: uuid.UUID | None

    @property
    def channel(self) -> str:
        return TOUCHPOINT[self.touchpoint][0]

    @property
    def line(self) -> str | None:
        return TOUCHPOINT[self.touchpoint][2]


@dataclass
class StageRow:
    seq: int
    customer: uuid.UUID
    stage: str
    transition: str
    at: datetime
    interaction: Row | None
    channel: str | None


@dataclass
class Conversation:
    id: uuid.UUID
    status: str
    resolved_at: datetime | None


@dataclass
class Dataset:
    tp_ids: dict[str, uuid.UUID] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    stages: list[StageRow] = field(default_factory=list)
    conversations: dict[uuid.UUID, Conversation] = field(default_factory=dict)


@dataclass(frozen=True)
class Scope:
    since: datetime | None = None
    until: datetime | None = None
    lines: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None
    # A segment filter: its keys (sent) and its members (recounted by the test, compared).
    segments: tuple[str, ...] | None = None
    members: frozenset[uuid.UUID] | None = None

    def admits(
        self, at: datetime, channel: str | None, line: str | None, customer: uuid.UUID
    ) -> bool:
        return (
            (self.members is None or customer in self.members)
            and (self.since is None or at >= self.since)
            and (self.until is None or at < self.until)
            and (self.channels is None or channel in self.channels)
            and (self.lines is None or line in self.lines)
        )

    def variables(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if self.since:
            result["since"] = self.since.isoformat()
        if self.until:
            result["until"] = self.until.isoformat()
        if self.lines is not None:
            result["businessLines"] = list(self.lines)
        if self.channels is not None:
            result["channels"] = list(self.channels)
        if self.segments is not None:
            result["segments"] = list(self.segments)
        return result


SCOPES = [
    Scope(),
    Scope(since=T0 + timedelta(days=3), until=T0 + timedelta(days=12)),
    Scope(lines=("retail",)),
    Scope(channels=("WEB", "ASSISTED", "SOCIAL")),
    Scope(since=T0 + timedelta(days=2), lines=("bank", "retail"), channels=("WEB", "MOBILE")),
]


async def build_dataset(db: asyncpg.Connection) -> Dataset:
    factory = Factory(db)
    data = Dataset()
    for name, channel, kind, line in TOUCHPOINTS:
        data.tp_ids[name] = await factory.touchpoint(name, channel, kind, business_line=line)
    rng = random.Random(20260101)
    names = list(TOUCHPOINT)
    seq = 0
    for number in range(36):
        customer = await factory.customer(f"Customer {number}")
        conversations: list[uuid.UUID] = []
        for key in range(rng.randint(0, 2)):
            status = rng.choice(["OPEN", "RESOLVED", "RESOLVED"])
            cid = await factory.conversation(customer, f"c{number}-{key}", status=status)
            conversations.append(cid)
            data.conversations[cid] = Conversation(cid, status, None)
        at = T0 + timedelta(hours=rng.randint(0, 72), minutes=rng.randint(0, 59))
        stage: str | None = None
        stage_channel: str | None = None
        for _ in range(rng.randint(1, 14)):
            # Gaps from a few minutes to several days, so maxGap and time ranges both bite.
            at += rng.choice(
                [
                    timedelta(minutes=rng.randint(1, 50)),
                    timedelta(hours=rng.randint(1, 30)),
                    timedelta(days=rng.randint(2, 5)),
                ]
            )
            touchpoint = rng.choice(names)
            conversation = None
            if conversations and touchpoint in CONVERSATIONAL and rng.random() < 0.8:
                conversation = rng.choice(conversations)
            direction = (
                "OUTBOUND" if touchpoint == "Newsletter" or rng.random() < 0.3 else "INBOUND"
            )
            sentiment = round(rng.uniform(-1, 1), 2) if rng.random() < 0.5 else None
            iid = await factory.interaction(
                customer,
                touchpoint,
                at=at,
                direction=direction,
                conversation_id=conversation,
                sentiment=sentiment,
            )
            row = Row(iid, customer, touchpoint, at, direction, sentiment, conversation)
            data.rows.append(row)
            # A journey engine in miniature: some interactions signal a stage, mostly forward.
            if rng.random() < 0.5:
                if stage is None:
                    signalled = STAGES[rng.choice([0, 0, 1])]
                else:
                    index = STAGES.index(stage) + rng.choice([-1, 0, 0, 1, 1, 1])
                    signalled = STAGES[max(0, min(4, index))]
                transition = _independent_transition(stage, signalled, stage_channel, row.channel)
                if transition is not None:
                    seq += 1
                    await factory.stage_change(
                        customer,
                        signalled,
                        previous=stage,
                        transition=transition,
                        at=at,
                        interaction_id=iid,
                        channel=row.channel,
                    )
                    data.stages.append(
                        StageRow(seq, customer, signalled, transition, at, row, row.channel)
                    )
                    stage, stage_channel = signalled, row.channel
    # Resolved conversations end a while after their last interaction.
    for conversation in data.conversations.values():
        times = [r.at for r in data.rows if r.conversation == conversation.id]
        if conversation.status == "RESOLVED" and times:
            conversation.resolved_at = max(times) + timedelta(minutes=rng.randint(5, 600))
            await db.execute(
                "UPDATE conversations SET resolved_at = $2 WHERE id = $1",
                conversation.id,
                conversation.resolved_at,
            )
    return data


def _independent_transition(
    previous: str | None, stage: str, previous_channel: str | None, channel: str
) -> str | None:
    if previous is None:
        return "INITIAL"
    if previous == stage:
        return "LOOPING" if channel != previous_channel else None
    return "FORWARD" if STAGES.index(stage) > STAGES.index(previous) else "BACKWARD"


@pytest.fixture
async def data(db: asyncpg.Connection) -> Dataset:
    dataset = await build_dataset(db)
    # The dataset must exercise what the queries distinguish, or the checks prove little.
    kinds = {s.transition for s in dataset.stages}
    assert {"INITIAL", "FORWARD", "BACKWARD", "LOOPING"} <= kinds
    assert {r.channel for r in dataset.rows} == {
        "WEB",
        "MOBILE",
        "ASSISTED",
        "SOCIAL",
        "PHYSICAL",
        "OUTBOUND",
    }
    assert {c.status for c in dataset.conversations.values()} == {"OPEN", "RESOLVED"}
    return dataset


def in_scope(data: Dataset, scope: Scope) -> list[Row]:
    return [r for r in data.rows if scope.admits(r.at, r.channel, r.line, r.customer)]


FILTER = "$filter: AnalyticsFilter"


# --- channel mix -------------------------------------------------------------------------------


async def test_channel_mix(gql: GraphQLClient, data: Dataset) -> None:
    for scope in SCOPES:
        await check_channel_mix(gql, data, scope)


async def check_channel_mix(gql: GraphQLClient, data: Dataset, scope: Scope) -> None:
    result = await gql.data(
        f"""query({FILTER}) {{ analytics {{ channelMix(filter: $filter) {{
            interactions customers inbound outbound share
            channels {{ channel {{ code }} interactions customers inbound outbound share }}
            touchpoints {{ touchpoint {{ name }} interactions customers inbound outbound }}
        }} }} }}""",
        {"filter": scope.variables()},
    )
    mix = result["analytics"]["channelMix"]
    rows = in_scope(data, scope)

    def counts(selected: list[Row]) -> dict[str, int]:
        return {
            "interactions": len(selected),
            "customers": len({r.customer for r in selected}),
            "inbound": sum(r.direction == "INBOUND" for r in selected),
            "outbound": sum(r.direction == "OUTBOUND" for r in selected),
        }

    assert {k: mix[k] for k in ("interactions", "customers", "inbound", "outbound")} == counts(rows)
    by_channel = group(rows, lambda r: r.channel)
    assert {
        c["channel"]["code"]: {
            k: c[k] for k in ("interactions", "customers", "inbound", "outbound")
        }
        for c in mix["channels"]
    } == {channel: counts(selected) for channel, selected in by_channel.items()}
    for entry in mix["channels"]:
        assert entry["share"] == pytest.approx(entry["interactions"] / len(rows))
    by_touchpoint = group(rows, lambda r: r.touchpoint)
    assert {
        t["touchpoint"]["name"]: {
            k: t[k] for k in ("interactions", "customers", "inbound", "outbound")
        }
        for t in mix["touchpoints"]
    } == {name: counts(selected) for name, selected in by_touchpoint.items()}
    assert [c["interactions"] for c in mix["channels"]] == sorted(
        (c["interactions"] for c in mix["channels"]), reverse=True
    )


def group(rows: Iterable[Row], key: Callable[[Row], Any]) -> dict[Any, list[Row]]:
    grouped: dict[Any, list[Row]] = defaultdict(list)
    for row in rows:
        grouped[key(row)].append(row)
    return grouped


# --- transitions -------------------------------------------------------------------------------


def stage_at(data: Dataset, row: Row) -> str | None:
    """The customer's stage at the interaction: the latest non-LOOPING change at or before it."""
    changes = [
        s
        for s in data.stages
        if s.customer == row.customer and s.transition != "LOOPING" and s.at <= row.at
    ]
    return max(changes, key=lambda s: (s.at, s.seq)).stage if changes else None


def expected_transitions(
    data: Dataset, scope: Scope, grouping: str, gap: timedelta | None
) -> tuple[dict[str, tuple[int, int, int]], dict[tuple[str, str, str | None], tuple[int, int]]]:
    def node(row: Row) -> str | None:
        if grouping == "CHANNEL":
            return row.channel
        if grouping == "TOUCHPOINT":
            return to_global_id("Touchpoint", str(data.tp_ids[row.touchpoint]))
        return stage_at(data, row)

    nodes: dict[str, list[Any]] = defaultdict(lambda: [0, 0, set()])
    links: dict[tuple[str, str, str | None], list[Any]] = defaultdict(lambda: [0, set()])
    for customer, rows in group(in_scope(data, scope), lambda r: r.customer).items():
        path = sorted((r for r in rows if node(r) is not None), key=lambda r: r.at)
        if not path:
            continue
        for here, following in zip(path, [*path[1:], None], strict=True):
            source = node(here)
            assert source is not None
            nodes[source][0] += 1
            if following is None or (gap is not None and following.at - here.at > gap):
                nodes[source][1] += 1
                nodes[source][2].add(customer)
                continue
            target = node(following)
            assert target is not None
            kind = None
            if grouping == "STAGE":
                if source == target:
                    kind = "LOOPING" if here.channel != following.channel else None
                elif STAGES.index(target) > STAGES.index(source):
                    kind = "FORWARD"
                else:
                    kind = "BACKWARD"
            links[(source, target, kind)][0] += 1
            links[(source, target, kind)][1].add(customer)
    return (
        {key: (total, drops, len(who)) for key, (total, drops, who) in nodes.items()},
        {key: (moves, len(who)) for key, (moves, who) in links.items()},
    )


TRANSITIONS = """query($groupBy: TransitionGrouping!, $gap: Int, $filter: AnalyticsFilter) {
  analytics { channelTransitions(groupBy: $groupBy, maxGapMinutes: $gap, filter: $filter) {
    groupBy maxGapMinutes moves dropOffs
    nodes { key label interactions dropOffs dropOffCustomers dropOffRate
            channel { code } stage { code } touchpoint { name } }
    links { source target moves customers share classification }
  } } }"""


@pytest.mark.parametrize("grouping", ["CHANNEL", "TOUCHPOINT", "STAGE"])
async def test_channel_transitions(
    gql: GraphQLClient, db: asyncpg.Connection, data: Dataset, grouping: str
) -> None:
    # Statistics give the filtered windows their customer ranges (HUB_ANALYTICS_PARTS is 2):
    # the filtered scopes below are answered in two parts, their counts summed.
    await db.execute("ANALYZE journey_steps")
    for scope in SCOPES:
        for gap_minutes in (None, 600):
            await check_channel_transitions(gql, data, scope, grouping, gap_minutes)


async def check_channel_transitions(
    gql: GraphQLClient, data: Dataset, scope: Scope, grouping: str, gap_minutes: int | None
) -> None:
    result = await gql.data(
        TRANSITIONS, {"groupBy": grouping, "gap": gap_minutes, "filter": scope.variables()}
    )
    graph = result["analytics"]["channelTransitions"]
    gap = timedelta(minutes=gap_minutes) if gap_minutes is not None else None
    nodes, links = expected_transitions(data, scope, grouping, gap)

    assert graph["groupBy"] == grouping and graph["maxGapMinutes"] == gap_minutes
    assert {
        n["key"]: (n["interactions"], n["dropOffs"], n["dropOffCustomers"]) for n in graph["nodes"]
    } == nodes
    assert {
        (link["source"], link["target"], link["classification"]): (
            link["moves"],
            link["customers"],
        )
        for link in graph["links"]
    } == links
    assert graph["moves"] == sum(moves for moves, _ in links.values())
    assert graph["dropOffs"] == sum(drops for _, drops, _ in nodes.values())
    for link in graph["links"]:
        assert link["share"] == pytest.approx(link["moves"] / nodes[link["source"]][0])
    for n in graph["nodes"]:
        assert n["dropOffRate"] == pytest.approx(n["dropOffs"] / n["interactions"])
        if grouping == "CHANNEL":
            assert n["channel"]["code"] == n["key"] and n["stage"] is None
        elif grouping == "STAGE":
            assert n["stage"]["code"] == n["key"] and n["channel"] is None
        else:
            name = n["touchpoint"]["name"]
            assert n["label"] == name and n["channel"]["code"] == TOUCHPOINT[name][0]
    if grouping == "STAGE":
        order = [n["key"] for n in graph["nodes"]]
        assert order == sorted(order, key=STAGES.index)
    if scope == Scope() and gap is None:
        # Without a gap every customer ends exactly once.
        customers = len({r.customer for r in data.rows if grouping != "STAGE" or stage_at(data, r)})
        assert graph["dropOffs"] == customers


async def test_transitions_reject_a_non_positive_gap(gql: GraphQLClient, db: Any) -> None:
    error = await gql.error(TRANSITIONS, {"groupBy": "CHANNEL", "gap": 0})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "maxGapMinutes" in error["message"]


async def test_an_empty_time_range_is_bad_input(gql: GraphQLClient, db: Any) -> None:
    error = await gql.error(
        f"query({FILTER}) {{ analytics {{ stageFunnel(filter: $filter) {{ customers }} }} }}",
        {"filter": {"since": T0.isoformat(), "until": T0.isoformat()}},
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "since" in error["message"]


# --- stage funnel ------------------------------------------------------------------------------


async def test_stage_funnel(gql: GraphQLClient, data: Dataset) -> None:
    for scope in SCOPES:
        await check_stage_funnel(gql, data, scope)


async def check_stage_funnel(gql: GraphQLClient, data: Dataset, scope: Scope) -> None:
    result = await gql.data(
        f"""query({FILTER}) {{ analytics {{ stageFunnel(filter: $filter) {{
            stage {{ code }} customers convertedToNext conversionToNext
            medianSecondsInStage completedStays
        }} }} }}""",
        {"filter": scope.variables()},
    )
    funnel = result["analytics"]["stageFunnel"]
    assert [step["stage"]["code"] for step in funnel] == STAGES

    entries = sorted(
        (s for s in data.stages if s.transition != "LOOPING"), key=lambda s: (s.at, s.seq)
    )
    left_at: dict[int, datetime] = {}
    for customer_entries in group(entries, lambda s: s.customer).values():
        for entry, following in itertools.pairwise(customer_entries):
            left_at[entry.seq] = following.at
    scoped = [
        s
        for s in entries
        if scope.admits(s.at, s.channel, s.interaction.line if s.interaction else None, s.customer)
        and (scope.lines is None or s.interaction is not None)
    ]
    for index, (stage, step) in enumerate(zip(STAGES, funnel, strict=True)):
        here = [s for s in scoped if s.stage == stage]
        first_at: dict[uuid.UUID, datetime] = {}
        for s in here:
            first_at[s.customer] = min(s.at, first_at.get(s.customer, s.at))
        assert step["customers"] == len(first_at), stage
        if index == len(STAGES) - 1:
            assert step["convertedToNext"] is None and step["conversionToNext"] is None
        else:
            converted = {
                s.customer
                for s in scoped
                if s.stage == STAGES[index + 1]
                and s.customer in first_at
                and s.at >= first_at[s.customer]
            }
            assert step["convertedToNext"] == len(converted), stage
            if first_at:
                assert step["conversionToNext"] == pytest.approx(len(converted) / len(first_at))
        stays = [(left_at[s.seq] - s.at).total_seconds() for s in here if s.seq in left_at]
        assert step["completedStays"] == len(stays)
        if stays:
            assert step["medianSecondsInStage"] == pytest.approx(statistics.median(stays))
        else:
            assert step["medianSecondsInStage"] is None


# --- touchpoint performance --------------------------------------------------------------------


async def test_touchpoint_performance(gql: GraphQLClient, data: Dataset) -> None:
    for scope in SCOPES:
        await check_touchpoint_performance(gql, data, scope)


async def check_touchpoint_performance(gql: GraphQLClient, data: Dataset, scope: Scope) -> None:
    result = await gql.data(
        f"""query({FILTER}) {{ analytics {{ touchpointPerformance(filter: $filter) {{
            touchpoint {{ name }} interactions averageSentiment measuresResponses conversations
            resolvedConversations resolutionRate medianFirstResponseSeconds
            medianResolutionSeconds
        }} }} }}""",
        {"filter": scope.variables()},
    )
    got = {p["touchpoint"]["name"]: p for p in result["analytics"]["touchpointPerformance"]}

    expected: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "interactions": 0,
            "sentiments": [],
            "conversations": 0,
            "resolved": 0,
            "responses": [],
            "resolutions": [],
        }
    )
    for row in in_scope(data, scope):
        expected[row.touchpoint]["interactions"] += 1
        if row.sentiment is not None:
            expected[row.touchpoint]["sentiments"].append(row.sentiment)
    for conversation in data.conversations.values():
        rows = sorted(
            (r for r in data.rows if r.conversation == conversation.id), key=lambda r: r.at
        )
        inbound = [r for r in rows if r.direction == "INBOUND"]
        if not inbound:
            continue
        first = inbound[0]
        if not scope.admits(first.at, first.channel, first.line, first.customer):
            continue
        entry = expected[first.touchpoint]
        entry["conversations"] += 1
        answers = [r.at for r in rows if r.direction == "OUTBOUND" and r.at > first.at]
        if answers:
            entry["responses"].append((answers[0] - first.at).total_seconds())
        if conversation.status == "RESOLVED":
            entry["resolved"] += 1
            assert conversation.resolved_at is not None
            entry["resolutions"].append((conversation.resolved_at - first.at).total_seconds())

    assert set(got) == set(expected)
    assert any(e["responses"] for e in expected.values()) or scope.channels == ("WEB", "MOBILE")
    for name, want in expected.items():
        perf = got[name]
        channel, kind, _ = TOUCHPOINT[name]
        measured = channel == "ASSISTED" or kind in MEASURED_KINDS
        assert perf["interactions"] == want["interactions"], name
        assert perf["measuresResponses"] is measured
        if want["sentiments"]:
            assert perf["averageSentiment"] == pytest.approx(statistics.mean(want["sentiments"]))
        else:
            assert perf["averageSentiment"] is None
        assert perf["conversations"] == want["conversations"], name
        assert perf["resolvedConversations"] == want["resolved"], name
        if want["conversations"]:
            assert perf["resolutionRate"] == pytest.approx(want["resolved"] / want["conversations"])
        else:
            assert perf["resolutionRate"] is None
        for key, samples in (
            ("medianFirstResponseSeconds", want["responses"]),
            ("medianResolutionSeconds", want["resolutions"]),
        ):
            if measured and samples:
                assert perf[key] == pytest.approx(statistics.median(samples)), (name, key)
            else:
                assert perf[key] is None, (name, key)


# --- interactions over time --------------------------------------------------------------------


def floor_to(at: datetime, bucket: str) -> datetime:
    at = at.astimezone(UTC)
    if bucket == "HOUR":
        return at.replace(minute=0, second=0, microsecond=0)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if bucket == "DAY" else day - timedelta(days=day.weekday())


STEP = {"HOUR": timedelta(hours=1), "DAY": timedelta(days=1), "WEEK": timedelta(weeks=1)}


async def test_interactions_over_time(gql: GraphQLClient, data: Dataset) -> None:
    for scope in SCOPES:
        for bucket in ("HOUR", "DAY", "WEEK"):
            await check_interactions_over_time(gql, data, scope, bucket)


async def check_interactions_over_time(
    gql: GraphQLClient, data: Dataset, scope: Scope, bucket: str
) -> None:
    result = await gql.data(
        f"""query($bucket: TimeBucket!, {FILTER}) {{ analytics {{
            interactionsOverTime(bucket: $bucket, filter: $filter) {{
              bucket buckets series {{ channel {{ code }} total
                                       points {{ start interactions inbound outbound }} }}
        }} }} }}""",
        {"bucket": bucket, "filter": scope.variables()},
    )
    series = result["analytics"]["interactionsOverTime"]
    rows = in_scope(data, scope)
    first = (
        floor_to(scope.since, bucket) if scope.since else min(floor_to(r.at, bucket) for r in rows)
    )
    last = (
        floor_to(scope.until - timedelta(microseconds=1), bucket)
        if scope.until
        else max(floor_to(r.at, bucket) for r in rows)
    )
    starts = []
    while first <= last:
        starts.append(first)
        first += STEP[bucket]
    assert [datetime.fromisoformat(b) for b in series["buckets"]] == starts
    channel_order = ["WEB", "MOBILE", "ASSISTED", "SOCIAL", "PHYSICAL", "OUTBOUND"]
    by_channel = group(rows, lambda r: r.channel)
    assert [s["channel"]["code"] for s in series["series"]] == [
        c for c in channel_order if c in by_channel
    ]
    for line in series["series"]:
        selected = by_channel[line["channel"]["code"]]
        assert line["total"] == len(selected)
        counted = group(selected, lambda r: floor_to(r.at, bucket))
        assert [
            (datetime.fromisoformat(p["start"]), p["interactions"], p["inbound"], p["outbound"])
            for p in line["points"]
        ] == [
            (
                start,
                len(counted.get(start, [])),
                sum(r.direction == "INBOUND" for r in counted.get(start, [])),
                sum(r.direction == "OUTBOUND" for r in counted.get(start, [])),
            )
            for start in starts
        ]


async def test_too_many_buckets_is_bad_input(gql: GraphQLClient, data: Dataset) -> None:
    error = await gql.error(
        f"""query({FILTER}) {{ analytics {{ interactionsOverTime(bucket: HOUR, filter: $filter)
            {{ buckets }} }} }}""",
        # From long before the data to past its end (the buckets cover the data in the window).
        {"filter": {"since": "2020-01-01T00:00:00Z", "until": zulu(T0 + timedelta(days=60))}},
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "coarser" in error["message"]


# --- shape of the work -------------------------------------------------------------------------


async def test_each_analytics_field_is_one_statement(
    gql: GraphQLClient, data: Dataset, count_statements: StatementCounter
) -> None:
    fields = [
        "channelMix { interactions channels { interactions } }",
        "channelTransitions(groupBy: STAGE, maxGapMinutes: 60) { nodes { key label } links "
        "{ source target moves classification } }",
        "stageFunnel { customers conversionToNext }",
        "touchpointPerformance { interactions medianFirstResponseSeconds }",
        "interactionsOverTime(bucket: DAY) { buckets series { total } }",
    ]
    for selection in fields:
        count_statements.statements.clear()
        await gql.data(f"{{ analytics {{ {selection} }} }}")
        # Rounds of the catch-up that takes recent writes into the derived tables (until one
        # finds less than a full round), then one read.
        statements = [str(statement) for statement in count_statements.statements]
        assert len(statements) >= 2, count_statements.report()
        assert all("analytics_catch_up()" in s for s in statements[:-1]), statements
        assert "analytics_catch_up()" not in statements[-1]


async def test_business_lines_are_listed(gql: GraphQLClient, data: Dataset) -> None:
    result = await gql.data("{ analytics { businessLines } }")
    assert result["analytics"]["businessLines"] == ["bank", "retail"]


async def test_analytics_are_for_analysts_and_admins_only(gql_as: Any, data: Dataset) -> None:
    query = "{ analytics { channelMix { channels { channel { code } interactions } } } }"
    for role in ("FRONTEND", "PARTNER"):
        client = await gql_as(role, channels=["WEB"]) if role == "PARTNER" else await gql_as(role)
        error = await client.error(query)
        assert error["extensions"]["code"] == "FORBIDDEN", (role, error)
    # An analyst gets the full answer: the same recount as the admin's test.
    await check_channel_mix(await gql_as("ANALYST"), data, Scope())


async def test_every_field_filtered_by_a_segment(
    gql: GraphQLClient, db: asyncpg.Connection, data: Dataset
) -> None:
    """AnalyticsFilter.segments keeps whole customers: the members of the segments now (the
    /journeys page's segment choice). Members recounted from the dataset's own rows."""
    await db.execute("ANALYZE journey_steps")
    await gql.data(
        """mutation { createSegment(input: {key: "app-users", name: "App users",
             activity: [{interactions: {channels: [MOBILE]}}]}) { key } }"""
    )
    members = frozenset(r.customer for r in data.rows if r.channel == "MOBILE")
    everyone = {r.customer for r in data.rows}
    assert 0 < len(members) < len(everyone)  # the filter must leave some customers out
    key = ("app-users",)
    scopes = [
        Scope(segments=key, members=members),
        Scope(
            since=T0 + timedelta(days=3),
            until=T0 + timedelta(days=12),
            segments=key,
            members=members,
        ),
        Scope(lines=("retail",), channels=("WEB", "MOBILE"), segments=key, members=members),
    ]
    for scope in scopes:
        await check_channel_mix(gql, data, scope)
        for grouping in ("CHANNEL", "STAGE"):
            for gap_minutes in (None, 600):
                await check_channel_transitions(gql, data, scope, grouping, gap_minutes)
        await check_stage_funnel(gql, data, scope)
        await check_touchpoint_performance(gql, data, scope)
        await check_interactions_over_time(gql, data, scope, "DAY")
    # Negative control: the segment's answer is not everyone's.
    mix = '{ analytics { channelMix(filter: {segments: ["app-users"]}) { customers } } }'
    assert (await gql.data(mix))["analytics"]["channelMix"]["customers"] == len(members)
    empty = await gql.data("{ analytics { channelMix(filter: {segments: []}) { customers } } }")
    assert empty["analytics"]["channelMix"]["customers"] == 0
    error = await gql.error(
        '{ analytics { stageFunnel(filter: {segments: ["nope"]}) { customers } } }'
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "unknown segment key(s): nope" in error["message"]
