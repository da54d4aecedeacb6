-- When the listing of the stored inventory started (unix ms): a scan whose
-- listing started earlier than the stored one's is older and is never saved
-- over it, whichever process made it.
ALTER TABLE daemon_scans ADD COLUMN snapshot_started_ms INTEGER;
