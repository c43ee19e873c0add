-- Benchmark data for `singularity bench daily` on PostgreSQL: psql $URL -f scripts/bench-faults.sql
-- 420,000 cleared faults opened over the 30 days from 2026-11-02 (14,000 a day), spread over
-- the estate's lamps and five kinds: a month of history for Faults.DailyFaults to count.
INSERT INTO faults (type, severity, state, lamp_id, count, first_seen, last_seen, cleared_at,
                    acknowledged, flapping, assignee, version, updated_at)
SELECT (ARRAY['LAMP_FAILURE','NODE_OFFLINE','VOLTAGE_LOW','SUPPLY_LOSS','CYCLING'])[1 + g % 5],
       (ARRAY['MAJOR','MAJOR','WARNING','MAJOR','MINOR'])[1 + g % 5],
       'CLEARED', 1 + (g * 7919) % 1000000, 1, t, t + 600000, t + 600000,
       false, false, '', 2, t + 600000
FROM (SELECT g, 1793577600000 + g * 6171 + (g * 37) % 1000 AS t
      FROM generate_series(0::bigint, 419999) g) s;
ANALYZE faults;
