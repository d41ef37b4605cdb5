-- Version 1 on PostgreSQL: the notes.
CREATE TABLE notes (
    id         BIGSERIAL PRIMARY KEY,
    title      TEXT   NOT NULL,
    body       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
