-- v4 on PostgreSQL: names that look alike are one name (shipped; never edit);
-- see SQLite's v4.

ALTER TABLE users ADD COLUMN name_key TEXT;

UPDATE users SET name_key = lower(name)
    WHERE id IN (SELECT MIN(id) FROM users GROUP BY lower(name));
UPDATE users SET name_key = lower(name) || chr(10) || uuid WHERE name_key IS NULL;

ALTER TABLE users ADD CONSTRAINT users_name_key_unique UNIQUE (name_key);
