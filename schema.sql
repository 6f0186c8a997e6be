-- kopir database schema.
--
-- This file is the schema, written as numbered migrations. The binary embeds it; each `-- migration N: …` block is
-- applied once, in order, inside one transaction that also sets `PRAGMA user_version = N`. Never edit a block that
-- has shipped: append a new one. Time is UTC, RFC 3339 text; money is integer minor units with its currency beside it.

-- migration 1: foundation: settings, certificates and CRLs of the built-in CA, operator users, the audit journal
CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

-- Every certificate the platform's CA made, its own included. Private keys are never stored here.
CREATE TABLE certificates (
    serial            TEXT PRIMARY KEY NOT NULL CHECK (length(serial) BETWEEN 2 AND 40 AND serial = lower(serial)),
    kind              TEXT NOT NULL CHECK (kind IN ('root_ca', 'issuing_ca', 'server', 'platform_client', 'client')),
    label             TEXT NOT NULL DEFAULT '',
    subject           TEXT NOT NULL,
    sha256            TEXT NOT NULL UNIQUE CHECK (length(sha256) = 64),
    not_before        TEXT NOT NULL,
    not_after         TEXT NOT NULL,
    pem               TEXT NOT NULL,
    issued_at         TEXT NOT NULL,
    issued_by         TEXT NOT NULL,
    revoked_at        TEXT,
    revocation_reason TEXT CHECK (revocation_reason IN ('unspecified', 'key-compromise', 'affiliation-changed',
                                  'superseded', 'cessation-of-operation', 'privilege-withdrawn')),
    CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL)),
    CHECK (revoked_at IS NULL OR kind IN ('client', 'platform_client', 'server'))
) STRICT;
CREATE INDEX certificates_kind ON certificates (kind, issued_at);

-- Signed revocation lists, newest number last. The served CRL is the newest one while it is fresh.
CREATE TABLE crls (
    number      INTEGER PRIMARY KEY NOT NULL CHECK (number > 0),
    this_update TEXT NOT NULL,
    next_update TEXT NOT NULL,
    pem         TEXT NOT NULL
) STRICT;

-- People who sign in: operator staff and regulators now; participants' employees join them later.
CREATE TABLE users (
    id                   INTEGER PRIMARY KEY,
    username             TEXT NOT NULL UNIQUE COLLATE NOCASE CHECK (length(username) BETWEEN 1 AND 64),
    display_name         TEXT NOT NULL DEFAULT '',
    role                 TEXT NOT NULL CHECK (role IN ('operator_admin', 'operator_staff', 'regulator',
                                 'participant_admin', 'participant_developer', 'participant_analyst')),
    password_hash        TEXT NOT NULL,
    must_change_password INTEGER NOT NULL DEFAULT 0 CHECK (must_change_password IN (0, 1)),
    totp_secret          BLOB,
    totp_enrolled_at     TEXT,
    failed_logins        INTEGER NOT NULL DEFAULT 0,
    locked_until         TEXT,
    disabled_at          TEXT,
    created_at           TEXT NOT NULL
) STRICT;

-- The append-only, hash-chained journal of security-relevant events. Never holds a secret.
CREATE TABLE audit_log (
    seq          INTEGER PRIMARY KEY NOT NULL,
    at           TEXT NOT NULL,
    actor        TEXT NOT NULL,
    organisation TEXT,
    action       TEXT NOT NULL,
    object       TEXT,
    outcome      TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    source       TEXT,
    detail       TEXT,
    prev_hash    TEXT NOT NULL CHECK (length(prev_hash) = 64),
    hash         TEXT NOT NULL UNIQUE CHECK (length(hash) = 64)
) STRICT;
CREATE INDEX audit_log_action ON audit_log (action, at);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
