-- v6: plugins' own database sessions (shipped; never edit).
--
-- The roles plinth made for plugins, with the password each logs in with:
-- only a role recorded here is ever used as a plugin's (a role of that name
-- that someone else made is refused), and only plinth's user reads this.
CREATE TABLE plugin_roles (
    plugin     TEXT   PRIMARY KEY,
    role       TEXT   NOT NULL UNIQUE,
    secret     TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

-- The decision for a call whose plugin statements ran in the plugin's
-- session and whose other writes in the host's: a prepared transaction
-- 'plinth:<id>' is committed when its row says 'commit' (written in the
-- host's transaction, so it commits with it), rolled back otherwise. A host
-- that starts resolves what others left prepared; a row is deleted once its
-- transaction is resolved.
CREATE TABLE plugin_commits (
    gid      TEXT   PRIMARY KEY,
    plugin   TEXT   NOT NULL,
    decision TEXT   NOT NULL CHECK (decision IN ('commit', 'abort')),
    at       BIGINT NOT NULL
);
