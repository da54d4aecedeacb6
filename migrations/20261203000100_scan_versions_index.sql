-- Every request asks for each daemon's scan generation and inventory digest
-- (`Store::scan_versions`). `inventory_sha256` was added after `inventory`
-- (hundreds of KB per daemon), so reading it walked every inventory's
-- overflow pages on every request, as `generation` did before migration 6:
-- with 100 daemons, 75 MB per request, and the pool's connections waited
-- seconds for each other under load. This index covers the whole query.
CREATE INDEX daemon_scans_versions ON daemon_scans (daemon_id, generation, inventory_sha256);
-- It covers what migration 6's index did.
DROP INDEX daemon_scans_generation;
