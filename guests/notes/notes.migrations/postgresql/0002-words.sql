-- Version 2 on PostgreSQL: each note knows how many words its body has;
-- notes written before are counted here (as on SQLite: spaces + 1).
ALTER TABLE notes ADD COLUMN words INTEGER NOT NULL DEFAULT 0;

UPDATE notes SET words = CASE
    WHEN trim(body) = '' THEN 0
    ELSE length(trim(body)) - length(replace(trim(body), ' ', '')) + 1
END;
