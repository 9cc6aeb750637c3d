-- A package key made by a rotation is endorsed by the key that signed before it, so that
-- enrolled devices come to trust it (docs/protocol.md, "Package keys"). The first key,
-- which devices learn at enrollment, has no endorsement.
ALTER TABLE package_keys ADD COLUMN endorsed_by BLOB
    CHECK (endorsed_by IS NULL OR length(endorsed_by) = 8);
ALTER TABLE package_keys ADD COLUMN endorsement BLOB
    CHECK ((endorsement IS NULL) = (endorsed_by IS NULL)
           AND (endorsement IS NULL OR length(endorsement) = 64));
