-- Version 1: a row per write a request asked for.
CREATE TABLE hits (
    id   INTEGER PRIMARY KEY,
    path TEXT NOT NULL
);
