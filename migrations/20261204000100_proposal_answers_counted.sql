-- The admin's answers to AppAPI's proposals move the reads counter too: the
-- overview's "N daemons proposed" is read with the other reads
-- (read_cache::Reads), and must follow an answer given in another process.
CREATE TRIGGER nextcloud_proposals_insert_counted AFTER INSERT ON nextcloud_proposals
    BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER nextcloud_proposals_update_counted AFTER UPDATE ON nextcloud_proposals
    BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER nextcloud_proposals_delete_counted AFTER DELETE ON nextcloud_proposals
    BEGIN UPDATE change_counter SET value = value + 1 WHERE id = 1; END;
