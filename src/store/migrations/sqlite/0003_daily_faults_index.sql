-- Daily Faults counts faults opened in a time range by type and severity: a covering index
-- answers it without touching the fault rows.
CREATE INDEX faults_opened ON faults (first_seen, type, severity);
DROP INDEX faults_by_first_seen;
