-- HaRP daemons (harp+http://host:port): the shared key (a secret: never
-- shown), the docker-engine-port of the Engine behind HaRP, and the ExApps
-- to look for there (a JSON array of app IDs; HaRP lists nothing).
ALTER TABLE daemons ADD COLUMN harp_key TEXT;
ALTER TABLE daemons ADD COLUMN harp_docker_port INTEGER;
ALTER TABLE daemons ADD COLUMN exapps TEXT NOT NULL DEFAULT '[]';
