-- Version 1 on PostgreSQL: a row per write a request asked for.
CREATE TABLE hits (
    id   BIGSERIAL PRIMARY KEY,
    path TEXT NOT NULL
);
