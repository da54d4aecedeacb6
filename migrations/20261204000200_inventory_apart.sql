-- Each daemon's stored inventory in a table of its own. In `daemon_scans`
-- it made every row hundreds of KB (750 KB at 1,000 images), and SQLite
-- writes a row whole: a rescan that found nothing new, storing only its
-- times, read and wrote the whole inventory again (75 MB through the WAL
-- for a rescan of 100 daemons, a quarter of the server's CPU in it). Now
-- times and errors are a small row; the inventory is written only when it
-- changed. Its digest (`inventory_sha256`) stays with the times.
CREATE TABLE daemon_inventories (
    daemon_id INTEGER PRIMARY KEY REFERENCES daemons (id) ON DELETE CASCADE,
    inventory TEXT NOT NULL
) STRICT;

INSERT INTO daemon_inventories (daemon_id, inventory)
    SELECT daemon_id, inventory FROM daemon_scans WHERE inventory IS NOT NULL;

ALTER TABLE daemon_scans DROP COLUMN inventory;
