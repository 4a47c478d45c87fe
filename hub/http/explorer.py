"""The example operations the GraphiQL explorer opens with, one tab per audience and question.

Kept as data so the page, the README and a test (every example validates against the schema)
use the same text. Lines stay within 62 characters: the explorer's query editor shows about 66
at 1280x800 (tests/http/test_browser.py checks that nothing is cut off).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    title: str
    query: str
    variables: str = ""


ANALYTICS_FILTER = """{
  "filter": {
    "since": "2026-01-01T00:00:00Z",
    "until": "2026-04-01T00:00:00Z",
    "businessLines": null,
    "channels": null
  }
}"""

EXAMPLES: list[Example] = [
    Example(
        "Customer 360°",
        """# A customer's whole picture: identities, stage, channels,
# recent interactions, open conversations. Look a customer up
# by an identifier (or use customer(id: ...)).
query Customer360($kind: IdentityKind!, $value: String!) {
  customerByIdentity(kind: $kind, value: $value) {
    id
    displayName
    traits
    identities { kind value lastSeenAt }
    currentStage { code name }
    stageEnteredAt
    stageHistory {
      stage { name } transition enteredAt channel { code }
    }
    channelsUsed { channel { code name } }
    lastInteraction {
      occurredAt type summary touchpoint { name }
    }
    interactions(first: 10) {
      totalCount
      nodes {
        occurredAt type direction summary
        channel { code } touchpoint { name }
      }
    }
    conversations {
      key status lastActivityAt channels { code }
    }
  }
}
""",
        '{\n  "kind": "EMAIL",\n  "value": "ana@example.com"\n}',
    ),
    Example(
        "Partner subscription",
        """# Live events for a partner: every new interaction,
# resumable from a cursor.
subscription PartnerFeed {
  interactionRecorded {
    cursor
    interaction { id type }
  }
}
""",
    ),
    Example(
        "Channel mix",
        """# Interactions and distinct customers per channel and
# touchpoint, in and out.
query ChannelMix($filter: AnalyticsFilter) {
  analytics {
    channelMix(filter: $filter) {
      interactions
      customers
      channels {
        channel { code name }
        interactions customers inbound outbound share
      }
      touchpoints {
        touchpoint { name businessLine }
        interactions customers share
      }
    }
  }
}
""",
        ANALYTICS_FILTER,
    ),
    Example(
        "Channel transitions",
        """# Where customers go next: the nodes and links of a Sankey,
# with drop-off per node. groupBy: CHANNEL | TOUCHPOINT |
# STAGE; maxGapMinutes ends a journey after a long pause.
query Transitions($filter: AnalyticsFilter) {
  analytics {
    channelTransitions(
      groupBy: CHANNEL
      maxGapMinutes: 10080
      filter: $filter
    ) {
      moves
      dropOffs
      nodes { key label interactions dropOffs dropOffRate }
      links {
        source target moves customers share classification
      }
    }
  }
}
""",
        ANALYTICS_FILTER,
    ),
    Example(
        "Stage funnel",
        """# Customers entering each stage, conversion to the next,
# median time in stage.
query Funnel($filter: AnalyticsFilter) {
  analytics {
    stageFunnel(filter: $filter) {
      stage { code name }
      customers
      convertedToNext
      conversionToNext
      medianSecondsInStage
    }
  }
}
""",
        ANALYTICS_FILTER,
    ),
    Example(
        "Touchpoint performance",
        """# Volume, sentiment, resolution rate and response times
# per touchpoint.
query Performance($filter: AnalyticsFilter) {
  analytics {
    touchpointPerformance(filter: $filter) {
      touchpoint { name kind channel { code } }
      interactions
      averageSentiment
      conversations
      resolutionRate
      medianFirstResponseSeconds
      medianResolutionSeconds
    }
  }
}
""",
        ANALYTICS_FILTER,
    ),
    Example(
        "Interactions over time",
        """# One series per channel; bucket: HOUR | DAY | WEEK.
query Trend($filter: AnalyticsFilter) {
  analytics {
    interactionsOverTime(bucket: WEEK, filter: $filter) {
      buckets
      series {
        channel { code }
        total
        points { start interactions inbound outbound }
      }
    }
  }
}
""",
        ANALYTICS_FILTER,
    ),
]
