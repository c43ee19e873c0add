-- What a history entry changed besides the state, in words ("to crew-north", "to MAJOR").
ALTER TABLE fault_history ADD COLUMN change TEXT NOT NULL DEFAULT '';
