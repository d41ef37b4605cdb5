-- Version 1 on PostgreSQL: notes, by owner, with a full-text vector the
-- server keeps in step (a generated column) and its GIN index.
CREATE TABLE notes (
    id         BIGSERIAL PRIMARY KEY,
    owner      TEXT   NOT NULL,
    title      TEXT   NOT NULL,
    body       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    search     TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', title || ' ' || body)) STORED
);

CREATE INDEX notes_by_owner ON notes (owner, id);

CREATE INDEX notes_search ON notes USING GIN (search);
