-- A roll-up's lamp faults, found without scanning every fault (group triage, Faults.List by
-- parent_id).
CREATE INDEX faults_by_parent ON faults (parent_id) WHERE parent_id IS NOT NULL;
