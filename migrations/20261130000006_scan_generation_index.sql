-- Pages and the API ask for every daemon's scan generation on each request.
-- `generation` is stored after `inventory` (hundreds of KB per daemon), so
-- reading it from the table walks the inventory's overflow pages every
-- time; this covering index answers without touching them.
CREATE INDEX daemon_scans_generation ON daemon_scans (daemon_id, generation);
