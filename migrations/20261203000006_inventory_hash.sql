-- The sha256 of the stored inventory: a rescan that finds the same
-- inventory records only its time, and every cache of it stays valid.
ALTER TABLE daemon_scans ADD COLUMN inventory_sha256 TEXT;
