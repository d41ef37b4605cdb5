-- v1: the seed schema (shipped; never edit, add a new migration instead).

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    email_verified INTEGER NOT NULL DEFAULT 0,
    avatar TEXT,
    bio TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX idx_users_uuid ON users (uuid);
CREATE INDEX idx_users_email ON users (email);
CREATE INDEX idx_users_name ON users (name);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_uuid TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    FOREIGN KEY (user_uuid) REFERENCES users (uuid) ON DELETE CASCADE
);
CREATE INDEX idx_sessions_user_uuid ON sessions (user_uuid);
CREATE INDEX idx_sessions_expires_at ON sessions (expires_at);

CREATE TABLE email_verification_tokens (
    token TEXT PRIMARY KEY,
    user_uuid TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    FOREIGN KEY (user_uuid) REFERENCES users (uuid) ON DELETE CASCADE
);
CREATE INDEX idx_email_verification_tokens_user_uuid ON email_verification_tokens (user_uuid);
CREATE INDEX idx_email_verification_tokens_expires_at ON email_verification_tokens (expires_at);

CREATE TABLE password_reset_tokens (
    token TEXT PRIMARY KEY,
    user_uuid TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    FOREIGN KEY (user_uuid) REFERENCES users (uuid) ON DELETE CASCADE
);
CREATE INDEX idx_password_reset_tokens_user_uuid ON password_reset_tokens (user_uuid);
CREATE INDEX idx_password_reset_tokens_expires_at ON password_reset_tokens (expires_at);
