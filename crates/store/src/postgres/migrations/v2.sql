-- v2 on PostgreSQL: the mail outbox and failure counters (shipped; never edit).

CREATE TABLE outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX idx_outbox_recipient_created_at ON outbox (recipient, created_at);

CREATE TABLE failed_attempts (
    key TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    last_at BIGINT NOT NULL
);
