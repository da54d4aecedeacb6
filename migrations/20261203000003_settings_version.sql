-- Bumped by every change: a change is applied only to the version it was
-- made from (compare-and-swap), so two changes at once cannot lose one.
ALTER TABLE settings ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
