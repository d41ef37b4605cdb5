-- Version 1: notes, by owner, and their full-text index (SQLite's FTS5;
-- the note's id is the index row's rowid).
CREATE TABLE notes (
    id         INTEGER PRIMARY KEY,
    owner      TEXT    NOT NULL,
    title      TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE INDEX notes_by_owner ON notes (owner, id);

CREATE VIRTUAL TABLE notes_text USING fts5(title, body);
