-- v3 on PostgreSQL: the outbox is a queue (shipped; never edit); see SQLite's v3.

ALTER TABLE outbox ADD COLUMN status TEXT NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'sent', 'failed'));
ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN sent_at BIGINT;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
CREATE INDEX idx_outbox_due ON outbox (status, next_attempt_at);

UPDATE outbox SET status = 'sent', sent_at = created_at, body = '';
