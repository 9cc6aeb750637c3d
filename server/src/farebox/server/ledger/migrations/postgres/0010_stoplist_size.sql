-- The stoplist's size is kept with its head, moved by every change (writes.change_blocks):
-- a device behind the head is sent a delta only while the delta is smaller than the list,
-- and counting the distinct tokens of `blocks` for each of those polls read the whole list.
ALTER TABLE stoplist_head ADD COLUMN size bigint NOT NULL DEFAULT 0 CHECK (size >= 0);
UPDATE stoplist_head SET size = (SELECT count(DISTINCT token) FROM blocks);
