-- A second role beside the leader's: settlement, held by a process that serves billing apart
-- from telemetry (or by the leader, when it serves billing). Its row fences settlement's
-- writes as the leader's row fences the leader's.
ALTER TABLE leadership DROP CONSTRAINT leadership_id_check;
ALTER TABLE leadership ADD CONSTRAINT leadership_id_check CHECK (id IN (1, 2));
INSERT INTO leadership (id, term, address, heartbeat_ms) VALUES (2, 0, '', 0);
