-- v3: the outbox is a queue (shipped; never edit). Each message is queued by
-- the call that sends it (in its unit of work), delivered by a sender, and
-- its body is scrubbed once delivered or given up on, so that no usable
-- token stays in the database.

ALTER TABLE outbox ADD COLUMN status TEXT NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'sent', 'failed'));
ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN sent_at INTEGER;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
CREATE INDEX idx_outbox_due ON outbox (status, next_attempt_at);

-- Mail recorded before the queue was shown by `plinth outbox`, which was its
-- delivery: it counts as sent, and its bodies (live tokens among them) go.
UPDATE outbox SET status = 'sent', sent_at = created_at, body = '';
