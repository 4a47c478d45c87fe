-- A large synthetic dataset for timing the analytics statements with EXPLAIN ANALYZE:
-- 50,000 customers, 1,000,000 interactions over 180 days, ~100,000 conversations and
-- ~200,000 stage changes. Run it in a scratch database migrated with `hub migrate`:
--   psql -d scratch -f bench/analytics_1m.sql
-- Data shapes only (not realistic behaviour); deterministic through setseed().
SELECT setseed(0.42);

TRUNCATE stage_history, interactions, conversations, identities, customers, touchpoints CASCADE;

INSERT INTO touchpoints (id, channel_code, name, kind, business_line)
SELECT gen_random_uuid(), t.channel, t.name || ' ' || bl, t.kind, bl
FROM (VALUES
    ('WEB', 'Website', 'WEBSITE'), ('WEB', 'Web chat', 'LIVE_CHAT'),
    ('MOBILE', 'iOS app', 'MOBILE_APP'), ('MOBILE', 'Android app', 'MOBILE_APP'),
    ('ASSISTED', 'Contact centre', 'VOICE'), ('ASSISTED', 'Help desk', 'EMAIL'),
    ('SOCIAL', 'WhatsApp', 'RICH_MESSAGING'), ('SOCIAL', 'Instagram', 'SOCIAL_PAGE'),
    ('PHYSICAL', 'Flagship store', 'STORE'), ('OUTBOUND', 'Newsletter', 'CAMPAIGN')
) AS t(channel, name, kind)
CROSS JOIN (VALUES ('retail'), ('bank'), ('travel')) AS b(bl);

CREATE TEMP TABLE tp AS
SELECT row_number() OVER (ORDER BY channel_code, name) - 1 AS n, id, channel_code
FROM touchpoints;

INSERT INTO customers (id, display_name, created_at, first_seen_at, last_seen_at)
SELECT gen_random_uuid(), 'Customer ' || g, now() - interval '180 days',
       now() - interval '180 days', now()
FROM generate_series(1, 50000) AS g;

CREATE TEMP TABLE cust AS SELECT row_number() OVER (ORDER BY id) AS n, id FROM customers;

-- 20 interactions per customer on average, spread over 180 days.
INSERT INTO interactions (id, customer_id, touchpoint_id, channel_code, occurred_at, type,
                          direction, sentiment)
SELECT gen_random_uuid(), c.id, tp.id, tp.channel_code, g.at,
       CASE tp.channel_code WHEN 'ASSISTED' THEN 'CALL' WHEN 'OUTBOUND' THEN 'CAMPAIGN_SENT'
            ELSE 'PAGE_VIEW' END,
       CASE WHEN g.r < 0.3 THEN 'OUTBOUND' ELSE 'INBOUND' END,
       CASE WHEN g.r < 0.4 THEN round((g.r * 5 - 1)::numeric, 2) END
FROM (SELECT n, floor(random() * 30)::int AS t, random() AS r,
             now() - interval '180 days' * random() AS at
      FROM generate_series(1, 1000000) AS n) AS g
JOIN cust c ON c.n = 1 + (g.n % 50000)
JOIN tp ON tp.n = g.t;

-- Conversations: a tenth of the interactions on messaging and assisted touchpoints.
INSERT INTO conversations (id, customer_id, key, status, started_at, last_activity_at, resolved_at)
SELECT gen_random_uuid(), c.id, 'conv-' || c.n || '-' || k,
       CASE WHEN random() < 0.7 THEN 'RESOLVED' ELSE 'OPEN' END,
       now() - interval '180 days', now(), NULL
FROM cust c CROSS JOIN generate_series(1, 2) AS k;

UPDATE interactions i SET conversation_id = v.id
FROM (SELECT id, customer_id, row_number() OVER (PARTITION BY customer_id ORDER BY key) AS k
      FROM conversations) AS v
WHERE v.customer_id = i.customer_id AND v.k = 1 + (abs(hashtext(i.id::text)) % 2)
  AND i.channel_code IN ('ASSISTED', 'SOCIAL', 'WEB') AND abs(hashtext(i.id::text)) % 3 = 0;

UPDATE conversations c SET started_at = s.first_at,
       resolved_at = CASE WHEN c.status = 'RESOLVED' THEN s.last_at END
FROM (SELECT conversation_id, min(occurred_at) AS first_at, max(occurred_at) AS last_at
      FROM interactions WHERE conversation_id IS NOT NULL GROUP BY 1) AS s
WHERE s.conversation_id = c.id;

-- Stage changes: every 5th interaction of a customer moves them to a (mostly later) stage.
INSERT INTO stage_history (customer_id, stage, previous_stage, transition, entered_at,
                           interaction_id, channel_code, reason)
SELECT customer_id, stage, lag(stage) OVER w,
       CASE WHEN lag(stage) OVER w IS NULL THEN 'INITIAL'
            WHEN lag(pos) OVER w < pos THEN 'FORWARD'
            WHEN lag(pos) OVER w > pos THEN 'BACKWARD' ELSE 'LOOPING' END,
       occurred_at, id, channel_code, 'bench'
FROM (
    SELECT i.*, s.code AS stage, s.position AS pos
    FROM (SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY occurred_at, id) AS k
          FROM interactions) AS i
    JOIN journey_stages s
      ON s.position = least(5, greatest(1, (i.k / 5)::int + 1 - (random() < 0.1)::int))
    WHERE i.k % 5 = 1
) AS moves
WINDOW w AS (PARTITION BY customer_id ORDER BY occurred_at, id);

UPDATE customers c SET current_stage = h.stage, stage_entered_at = h.entered_at
FROM (SELECT DISTINCT ON (customer_id) customer_id, stage, entered_at FROM stage_history
      ORDER BY customer_id, entered_at DESC, id DESC) AS h
WHERE h.customer_id = c.id;

VACUUM ANALYZE;
SELECT (SELECT count(*) FROM interactions) AS interactions,
       (SELECT count(*) FROM conversations) AS conversations,
       (SELECT count(*) FROM stage_history) AS stage_changes;
