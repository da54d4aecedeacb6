-- Deletion exactness: a run remembers what the admin approved and what it
-- left out (and why); a job remembers that a removal call went out, so that
-- an answer lost to a timeout is not recorded as "already removed, 0 bytes".
ALTER TABLE cleanup_runs ADD COLUMN approved INTEGER;                  -- images approved in the preview; NULL: "everything removable now"
ALTER TABLE cleanup_runs ADD COLUMN left_out TEXT NOT NULL DEFAULT '[]'; -- JSON [{daemon, image_id, reason}]
-- The image's layers (JSON [{chain_id, size}]) when the removal call went out:
-- if its answer is lost, the bytes freed are the ones of these layers gone since.
ALTER TABLE cleanup_jobs ADD COLUMN removal_layers TEXT;
