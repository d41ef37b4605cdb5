-- v5: plugins keep their own data (shipped; never edit).
--
-- Each plugin's schema versions: one row per migration applied, with the
-- SHA-256 of the SQL it ran, so that a shipped migration edited afterwards
-- is noticed. Plugins' own tables live beside these, named
-- "<plugin>:<name>"; no plugin can reach these two tables.
CREATE TABLE plugin_migrations (
    plugin     TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    checksum   TEXT    NOT NULL,
    applied_at INTEGER NOT NULL,
    PRIMARY KEY (plugin, version)
) WITHOUT ROWID;

-- wasi:keyvalue buckets, reached only through that interface: a bucket is
-- (plugin, bucket), so another plugin's bucket of the same name is another
-- bucket.
CREATE TABLE plugin_keyvalue (
    plugin TEXT NOT NULL,
    bucket TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  BLOB NOT NULL,
    PRIMARY KEY (plugin, bucket, key)
) WITHOUT ROWID;

-- What each plugin's data takes, kept up to date by the units that write it
-- under a quota (counted afresh when missing): a quota check reads one row
-- rather than every page of the plugin's tables.
CREATE TABLE plugin_usage (
    plugin TEXT    PRIMARY KEY,
    bytes  INTEGER NOT NULL
) WITHOUT ROWID;
