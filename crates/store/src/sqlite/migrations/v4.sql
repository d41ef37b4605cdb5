-- v4: names that look alike are one name (shipped; never edit). Each user
-- has a name key (the name, NFKC-normalised and lowercased, computed by the
-- store), unique, so that `Admin` cannot sign up beside `admin`.

ALTER TABLE users ADD COLUMN name_key TEXT;

-- Existing users: the lowercased name (SQLite's lower() folds ASCII only).
-- Where earlier names already collide, the oldest keeps the key and the
-- others get a key of their own: they stay, and no new name can join them.
UPDATE users SET name_key = lower(name)
    WHERE rowid IN (SELECT MIN(rowid) FROM users GROUP BY lower(name));
UPDATE users SET name_key = lower(name) || char(10) || uuid WHERE name_key IS NULL;

CREATE UNIQUE INDEX idx_users_name_key ON users (name_key);
