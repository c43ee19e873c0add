-- A shift's handover reads the events of a time window.
CREATE INDEX fault_events_by_time ON fault_events (at);
