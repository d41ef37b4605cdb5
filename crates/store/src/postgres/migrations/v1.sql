-- v1 on PostgreSQL: the seed schema (shipped; never edit, add a new migration
-- instead). The same tables, columns, indexes and cascades as SQLite's v1;
-- times are Unix seconds (BIGINT). Unique constraints are named, because a
-- conflict is reported to plugins by the constraint's name.

CREATE TABLE users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT NOT NULL CONSTRAINT users_uuid_unique UNIQUE,
    name TEXT NOT NULL CONSTRAINT users_name_unique UNIQUE,
    email TEXT NOT NULL CONSTRAINT users_email_unique UNIQUE,
    password_hash TEXT NOT NULL,
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    avatar TEXT,
    bio TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX idx_users_uuid ON users (uuid);
CREATE INDEX idx_users_email ON users (email);
CREATE INDEX idx_users_name ON users (name);

CREATE TABLE sessions (
    id TEXT CONSTRAINT sessions_pkey PRIMARY KEY,
    user_uuid TEXT NOT NULL REFERENCES users (uuid) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX idx_sessions_user_uuid ON sessions (user_uuid);
CREATE INDEX idx_sessions_expires_at ON sessions (expires_at);

CREATE TABLE email_verification_tokens (
    token TEXT CONSTRAINT email_verification_tokens_pkey PRIMARY KEY,
    user_uuid TEXT NOT NULL REFERENCES users (uuid) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX idx_email_verification_tokens_user_uuid ON email_verification_tokens (user_uuid);
CREATE INDEX idx_email_verification_tokens_expires_at ON email_verification_tokens (expires_at);

CREATE TABLE password_reset_tokens (
    token TEXT CONSTRAINT password_reset_tokens_pkey PRIMARY KEY,
    user_uuid TEXT NOT NULL REFERENCES users (uuid) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX idx_password_reset_tokens_user_uuid ON password_reset_tokens (user_uuid);
CREATE INDEX idx_password_reset_tokens_expires_at ON password_reset_tokens (expires_at);
