ALTER TABLE cdrs DROP COLUMN sent_caller;
ALTER TABLE cdrs DROP COLUMN sent_callee;
