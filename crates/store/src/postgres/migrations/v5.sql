-- v5 on PostgreSQL: plugins keep their own data (shipped; never edit); see
-- SQLite's v5.
CREATE TABLE plugin_migrations (
    plugin     TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    checksum   TEXT    NOT NULL,
    applied_at BIGINT  NOT NULL,
    CONSTRAINT plugin_migrations_pkey PRIMARY KEY (plugin, version)
);

CREATE TABLE plugin_keyvalue (
    plugin TEXT  NOT NULL,
    bucket TEXT  NOT NULL,
    key    TEXT  NOT NULL,
    value  BYTEA NOT NULL,
    CONSTRAINT plugin_keyvalue_pkey PRIMARY KEY (plugin, bucket, key)
);

CREATE TABLE plugin_usage (
    plugin TEXT   NOT NULL,
    bytes  BIGINT NOT NULL,
    CONSTRAINT plugin_usage_pkey PRIMARY KEY (plugin)
);
