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

-- migration 2: participants: organisations, personal-account sessions, accreditation, applications
CREATE TABLE organisations (
    id              INTEGER PRIMARY KEY,
    bin             TEXT NOT NULL UNIQUE CHECK (length(bin) = 12 AND bin NOT GLOB '*[^0-9]*'),
    name            TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    licence_number  TEXT NOT NULL CHECK (length(licence_number) BETWEEN 1 AND 64),
    contact_email   TEXT NOT NULL,
    contact_phone   TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    website         TEXT NOT NULL DEFAULT '',
    logo            BLOB,
    logo_type       TEXT CHECK (logo_type IN ('image/png', 'image/jpeg')),
    -- registered: may apply; accredited: in the registries; suspended / revoked: blocked everywhere.
    status          TEXT NOT NULL DEFAULT 'registered'
                    CHECK (status IN ('registered', 'accredited', 'suspended', 'revoked')),
    status_reason   TEXT NOT NULL DEFAULT '',
    is_provider     INTEGER NOT NULL DEFAULT 0 CHECK (is_provider IN (0, 1)),
    is_user         INTEGER NOT NULL DEFAULT 0 CHECK (is_user IN (0, 1)),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
) STRICT;

ALTER TABLE users ADD COLUMN organisation_id INTEGER REFERENCES organisations (id);
ALTER TABLE users ADD COLUMN full_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';
-- The last TOTP time step accepted: a code is never accepted twice (RFC 6238 §5.2).
ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;
CREATE INDEX users_organisation ON users (organisation_id);

-- Browser sessions. Only a hash of the cookie value is stored.
CREATE TABLE sessions (
    id_hash       TEXT PRIMARY KEY NOT NULL CHECK (length(id_hash) = 64),
    user_id       INTEGER REFERENCES users (id) ON DELETE CASCADE,
    -- anonymous: before sign-in; password: password checked, second factor pending; active: signed in.
    stage         TEXT NOT NULL CHECK (stage IN ('anonymous', 'password', 'active')),
    csrf_token    TEXT NOT NULL,
    pending_totp  BLOB,
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    source        TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Accreditation applications: roles asked for, questionnaire (JSON), contacts, the operator's decision.
CREATE TABLE accreditation_applications (
    id                 INTEGER PRIMARY KEY,
    organisation_id    INTEGER NOT NULL REFERENCES organisations (id),
    wants_provider     INTEGER NOT NULL CHECK (wants_provider IN (0, 1)),
    wants_user         INTEGER NOT NULL CHECK (wants_user IN (0, 1)),
    questionnaire      TEXT NOT NULL,
    contact_name       TEXT NOT NULL,
    contact_email      TEXT NOT NULL,
    contact_phone      TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('draft', 'submitted', 'changes_requested', 'approved', 'rejected')),
    decision_reason    TEXT NOT NULL DEFAULT '',
    decided_by         INTEGER REFERENCES users (id),
    decided_at         TEXT,
    submitted_at       TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    CHECK (wants_provider + wants_user >= 1)
) STRICT;
CREATE INDEX accreditation_applications_status ON accreditation_applications (status, submitted_at);
-- One open application per organisation at a time.
CREATE UNIQUE INDEX accreditation_applications_one_open ON accreditation_applications (organisation_id)
    WHERE status IN ('draft', 'submitted', 'changes_requested');

CREATE TABLE application_documents (
    id              INTEGER PRIMARY KEY,
    application_id  INTEGER NOT NULL REFERENCES accreditation_applications (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    filename        TEXT NOT NULL,
    content_type    TEXT NOT NULL CHECK (content_type IN ('application/pdf', 'image/png', 'image/jpeg')),
    size            INTEGER NOT NULL CHECK (size > 0),
    sha256          TEXT NOT NULL,
    content         BLOB NOT NULL,
    uploaded_at     TEXT NOT NULL
) STRICT;

-- Accreditation certificates issued on approval.
CREATE TABLE accreditations (
    number           TEXT PRIMARY KEY NOT NULL,
    organisation_id  INTEGER NOT NULL REFERENCES organisations (id),
    application_id   INTEGER NOT NULL UNIQUE REFERENCES accreditation_applications (id),
    is_provider      INTEGER NOT NULL CHECK (is_provider IN (0, 1)),
    is_user          INTEGER NOT NULL CHECK (is_user IN (0, 1)),
    issued_at        TEXT NOT NULL,
    valid_until      TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'suspended', 'revoked', 'superseded'))
) STRICT;
CREATE INDEX accreditations_organisation ON accreditations (organisation_id);

-- An API user's applications (OAuth clients) and API providers' systems that call the platform.
CREATE TABLE applications (
    id               INTEGER PRIMARY KEY,
    organisation_id  INTEGER NOT NULL REFERENCES organisations (id),
    client_id        TEXT NOT NULL UNIQUE,
    name             TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    kind             TEXT NOT NULL CHECK (kind IN ('api_user', 'provider_system')),
    redirect_uris    TEXT NOT NULL DEFAULT '[]',
    status           TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_by       INTEGER REFERENCES users (id),
    created_at       TEXT NOT NULL
) STRICT;
CREATE INDEX applications_organisation ON applications (organisation_id);

-- Client certificates belong to an application; during a rotation the old one stays valid until retire_at.
ALTER TABLE certificates ADD COLUMN application_id INTEGER REFERENCES applications (id);
ALTER TABLE certificates ADD COLUMN retire_at TEXT;
CREATE INDEX certificates_application ON certificates (application_id);

-- Throttling of sign-in attempts per source address, next to the per-account lockout in users.
CREATE TABLE login_attempts (
    source      TEXT NOT NULL,
    at          TEXT NOT NULL
) STRICT;
CREATE INDEX login_attempts_source ON login_attempts (source, at);

-- migration 3: the platform's JWS signing keys (tokens, signed headers to banks, webhooks), published as a JWKS
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY NOT NULL,
    alg           TEXT NOT NULL CHECK (alg IN ('ES256')),
    public_jwk    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    -- A retired key signs nothing new but stays published until unpublish_at, so what it signed still verifies.
    retired_at    TEXT,
    unpublish_at  TEXT,
    CHECK ((retired_at IS NULL) = (unpublish_at IS NULL))
) STRICT;

-- migration 4: trust: one-time codes sent to customers (stored hashed), and the demo SMS outbox
CREATE TABLE otp_challenges (
    id            TEXT PRIMARY KEY NOT NULL,
    purpose       TEXT NOT NULL,
    -- SHA-256 of the phone number: a resend must name the same number; the number itself is not kept here.
    phone_hash    TEXT NOT NULL,
    salt          TEXT NOT NULL,
    code_hash     TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    sends         INTEGER NOT NULL DEFAULT 1,
    last_sent_at  TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'verified', 'failed'))
) STRICT;
CREATE INDEX otp_challenges_expiry ON otp_challenges (expires_at);

-- What the demo "outbox" SMS adapter would have sent. Demo mode only; never in a snapshot.
CREATE TABLE sms_outbox (
    id       INTEGER PRIMARY KEY,
    phone    TEXT NOT NULL,
    message  TEXT NOT NULL,
    sent_at  TEXT NOT NULL
) STRICT;

-- migration 5: consent, customers and the authorization server; the API catalogue's APIs and connections
-- Customers known to the platform: identified by IIN after biometric + SMS verification. The phone is the one the
-- last verification went to.
CREATE TABLE customers (
    id             INTEGER PRIMARY KEY,
    -- 12 digits; in a pseudonymised auditor's snapshot, `pseudo:` and a keyed hash instead.
    iin            TEXT NOT NULL UNIQUE
                   CHECK ((length(iin) = 12 AND iin NOT GLOB '*[^0-9]*') OR iin GLOB 'pseudo:*'),
    created_at     TEXT NOT NULL,
    last_seen_at   TEXT NOT NULL
) STRICT;

-- A provider's published API (its passport) and API users' applications connected to it.
CREATE TABLE apis (
    id                   INTEGER PRIMARY KEY,
    organisation_id      INTEGER NOT NULL REFERENCES organisations (id),
    name                 TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    version              TEXT NOT NULL CHECK (length(version) BETWEEN 1 AND 32),
    standard             TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    sandbox_base_url     TEXT NOT NULL DEFAULT '',
    production_base_url  TEXT NOT NULL DEFAULT '',
    sla_response_ms      INTEGER NOT NULL DEFAULT 1000 CHECK (sla_response_ms > 0),
    contact_email        TEXT NOT NULL DEFAULT '',
    contact_phone        TEXT NOT NULL DEFAULT '',
    status               TEXT NOT NULL DEFAULT 'draft'
                         CHECK (status IN ('draft', 'in_testing', 'published', 'suspended', 'deprecated', 'retired')),
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    published_at         TEXT
) STRICT;
CREATE INDEX apis_organisation ON apis (organisation_id);

CREATE TABLE api_connections (
    id                INTEGER PRIMARY KEY,
    application_id    INTEGER NOT NULL REFERENCES applications (id),
    api_id            INTEGER NOT NULL REFERENCES apis (id),
    status            TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disconnected')),
    connected_at      TEXT NOT NULL,
    disconnected_at   TEXT,
    UNIQUE (application_id, api_id)
) STRICT;
CREATE INDEX api_connections_api ON api_connections (api_id);

-- Account-access consents (OBIE v3.1 shape): one API user's application, one customer, one or several providers.
CREATE TABLE consents (
    id                 TEXT PRIMARY KEY NOT NULL,
    application_id     INTEGER NOT NULL REFERENCES applications (id),
    customer_id        INTEGER REFERENCES customers (id),
    permissions        TEXT NOT NULL,
    purpose            TEXT NOT NULL,
    expires_at         TEXT NOT NULL,
    transaction_from   TEXT,
    transaction_to     TEXT,
    status             TEXT NOT NULL DEFAULT 'AwaitingAuthorisation'
                       CHECK (status IN ('AwaitingAuthorisation', 'Authorised', 'Rejected', 'Revoked', 'Expired')),
    created_at         TEXT NOT NULL,
    status_updated_at  TEXT NOT NULL,
    authorised_at      TEXT,
    last_used_at       TEXT,
    CHECK (status IN ('AwaitingAuthorisation', 'Rejected') OR customer_id IS NOT NULL)
) STRICT;
CREATE INDEX consents_application ON consents (application_id, created_at);
CREATE INDEX consents_customer ON consents (customer_id);
CREATE INDEX consents_expiry ON consents (status, expires_at);

-- The banks a consent names. A customer may revoke one bank of a consent; revoking the last one revokes the consent.
CREATE TABLE consent_providers (
    consent_id       TEXT NOT NULL REFERENCES consents (id),
    organisation_id  INTEGER NOT NULL REFERENCES organisations (id),
    status           TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    revoked_at       TEXT,
    PRIMARY KEY (consent_id, organisation_id)
) STRICT;
CREATE INDEX consent_providers_organisation ON consent_providers (organisation_id);

-- Every status change of a consent (or of one bank of it): who, when, why.
CREATE TABLE consent_history (
    id               INTEGER PRIMARY KEY,
    consent_id       TEXT NOT NULL REFERENCES consents (id),
    status           TEXT NOT NULL,
    -- Set when the change concerns one bank of the consent only.
    organisation_id  INTEGER REFERENCES organisations (id),
    actor            TEXT NOT NULL,
    reason           TEXT NOT NULL DEFAULT '',
    at               TEXT NOT NULL
) STRICT;
CREATE INDEX consent_history_consent ON consent_history (consent_id, id);

-- Customer verification journeys (IIN → biometric → SMS code), for the authorize pages and the /my pages. The
-- browser holds a random cookie; only its SHA-256 is kept here. The phone is kept while the journey is open (for
-- resends) and cleared when it ends.
CREATE TABLE customer_sessions (
    id_hash         TEXT PRIMARY KEY NOT NULL,
    purpose         TEXT NOT NULL CHECK (purpose IN ('authorize', 'my')),
    stage           TEXT NOT NULL CHECK (stage IN ('identify', 'biometric', 'otp', 'verified', 'closed')),
    iin             TEXT,
    phone           TEXT,
    otp_id          TEXT,
    customer_id     INTEGER REFERENCES customers (id),
    biometric_failures INTEGER NOT NULL DEFAULT 0,
    csrf            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL
) STRICT;
CREATE INDEX customer_sessions_expiry ON customer_sessions (expires_at);

-- Pushed authorization requests (RFC 9126) and what becomes of them: the browser journey and the code.
CREATE TABLE authorization_requests (
    id                   TEXT PRIMARY KEY NOT NULL,
    -- SHA-256 of the request_uri's random part; used once, before request_expires_at.
    request_uri_hash     TEXT NOT NULL UNIQUE,
    application_id       INTEGER NOT NULL REFERENCES applications (id),
    consent_id           TEXT NOT NULL REFERENCES consents (id),
    redirect_uri         TEXT NOT NULL,
    scope                TEXT NOT NULL,
    state                TEXT,
    code_challenge       TEXT NOT NULL,
    created_at           TEXT NOT NULL,
    request_expires_at   TEXT NOT NULL,
    session_hash         TEXT,
    status               TEXT NOT NULL DEFAULT 'pushed'
                         CHECK (status IN ('pushed', 'started', 'approved', 'denied', 'failed', 'redeemed')),
    -- SHA-256 of the authorization code; single use, valid until code_expires_at.
    code_hash            TEXT UNIQUE,
    code_expires_at      TEXT,
    cert_sha256          TEXT NOT NULL
) STRICT;
CREATE INDEX authorization_requests_expiry ON authorization_requests (request_expires_at);

-- Refresh tokens (SHA-256 only), bound to the client, its certificate and the consent; not rotated.
CREATE TABLE refresh_tokens (
    token_hash      TEXT PRIMARY KEY NOT NULL,
    application_id  INTEGER NOT NULL REFERENCES applications (id),
    consent_id      TEXT NOT NULL REFERENCES consents (id),
    cert_sha256     TEXT NOT NULL,
    scope           TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    revoked_at      TEXT
) STRICT;
CREATE INDEX refresh_tokens_consent ON refresh_tokens (consent_id);

-- Access tokens are self-contained JWTs; their ids are kept so that revocation and introspection can judge them.
CREATE TABLE access_tokens (
    jti             TEXT PRIMARY KEY NOT NULL,
    application_id  INTEGER NOT NULL REFERENCES applications (id),
    consent_id      TEXT NOT NULL REFERENCES consents (id),
    cert_sha256     TEXT NOT NULL,
    issued_at       TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    revoked_at      TEXT
) STRICT;
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at);
CREATE INDEX access_tokens_consent ON access_tokens (consent_id);

-- migration 6: signed webhooks to participants, kept in an outbox until delivered
ALTER TABLE organisations ADD COLUMN webhook_url TEXT NOT NULL DEFAULT '';
CREATE TABLE webhook_outbox (
    id                INTEGER PRIMARY KEY,
    event_id          TEXT NOT NULL UNIQUE,
    organisation_id   INTEGER NOT NULL REFERENCES organisations (id),
    event_type        TEXT NOT NULL,
    payload           TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   TEXT NOT NULL,
    last_attempt_at   TEXT,
    last_error        TEXT NOT NULL DEFAULT '',
    delivered_at      TEXT
) STRICT;
CREATE INDEX webhook_outbox_due ON webhook_outbox (status, next_attempt_at);
CREATE INDEX webhook_outbox_organisation ON webhook_outbox (organisation_id, id);

-- migration 7: the API catalogue: passports' time-outs, publication checks and the marketplace's full-text search
ALTER TABLE apis ADD COLUMN timeout_ms INTEGER NOT NULL DEFAULT 5000 CHECK (timeout_ms BETWEEN 100 AND 60000);
-- Each run of a check of an API (the publication gate, later the sandbox's schedule): its result and evidence.
CREATE TABLE api_checks (
    id           INTEGER PRIMARY KEY,
    api_id       INTEGER NOT NULL REFERENCES apis (id),
    purpose      TEXT NOT NULL CHECK (purpose IN ('publication', 'scheduled')),
    environment  TEXT NOT NULL CHECK (environment IN ('sandbox', 'production')),
    base_url     TEXT NOT NULL,
    passed       INTEGER NOT NULL CHECK (passed IN (0, 1)),
    -- JSON: the findings (case, outcome, evidence); never a secret.
    findings     TEXT NOT NULL DEFAULT '[]',
    latency_ms   INTEGER,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL
) STRICT;
CREATE INDEX api_checks_api ON api_checks (api_id, id);
-- The marketplace's search: one row per API (rowid = apis.id), kept by the catalogue in the same transaction as
-- every change of the API or its provider's name.
CREATE VIRTUAL TABLE apis_search USING fts5(name, provider, description, standard, tokenize = 'unicode61 remove_diacritics 2');

-- migration 8: metering of data exchanges through the gateway (no account data: who, which API, what, how it went)
CREATE TABLE exchanges (
    id                        INTEGER PRIMARY KEY,
    at                        TEXT NOT NULL,
    application_id            INTEGER NOT NULL,
    user_organisation_id      INTEGER NOT NULL,
    -- Empty for a request refused before any bank was called.
    provider_organisation_id  INTEGER,
    api_id                    INTEGER,
    consent_id                TEXT,
    -- `accounts`, `account`, `balances`, `transactions`.
    endpoint                  TEXT NOT NULL,
    status                    INTEGER NOT NULL,
    latency_ms                INTEGER NOT NULL,
    bytes                     INTEGER NOT NULL,
    interaction_id            TEXT NOT NULL
) STRICT;
CREATE INDEX exchanges_at ON exchanges (at);
CREATE INDEX exchanges_application ON exchanges (application_id, at);
CREATE INDEX exchanges_provider ON exchanges (provider_organisation_id, at);

-- migration 9: the sandbox's scheduled checks: each API's health state, compact run summaries, hourly rollups
-- Scale: 1,920 runs a day per API (one every 45 s) × 2 environments × 100 APIs = 384,000 checks a day. So:
-- * every check leaves one compact summary row in `api_runs` (WITHOUT ROWID, keyed by API and time; time as unix
--   milliseconds, not RFC 3339 text, to keep the row at ~30 bytes: ~12 MB a day for 100 APIs);
-- * the full findings (evidence) go to `api_checks` (purpose 'scheduled') only when the outcome or the set of failed
--   cases changes, or when the last kept failure of that environment is more than an hour old; the summary row then
--   points at it (`check_id`). Passing runs that change nothing keep no findings;
-- * `api_health_hourly` rolls the summaries up per hour and environment for the charts and availability figures;
-- * summaries and scheduled findings older than `sandbox.keep_runs_days` are pruned (hourly), rollups after a year.
-- Findings hold no secret and no account data (see catalog/check.rs), so all three tables go to the snapshot.
CREATE TABLE api_health (
    api_id                INTEGER PRIMARY KEY REFERENCES apis (id),
    -- Consecutive failing and passing runs (a run checks both environments; it fails when either fails).
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    consecutive_passes    INTEGER NOT NULL DEFAULT 0,
    last_run_at           TEXT,
    last_passed           INTEGER CHECK (last_passed IN (0, 1)),
    -- When the API was taken off the marketplace (status 'suspended'), by whom ('checks' or 'operator'), and the
    -- status it goes back to when relisted.
    delisted_at           TEXT,
    delisted_by           TEXT CHECK (delisted_by IN ('checks', 'operator')),
    restore_status        TEXT CHECK (restore_status IN ('published', 'deprecated')),
    -- The operator's override: 'automatic' (the checks decide), or a pinned 'delisted' / 'listed' state with the
    -- mandatory reason, who pinned it and when. Checks still run and count while pinned.
    override              TEXT NOT NULL DEFAULT 'automatic' CHECK (override IN ('automatic', 'delisted', 'listed')),
    override_reason       TEXT,
    override_by           TEXT,
    override_at           TEXT
) STRICT;
CREATE TABLE api_runs (
    api_id       INTEGER NOT NULL,
    -- Unix time of the check's start, in milliseconds.
    at_ms        INTEGER NOT NULL,
    environment  TEXT NOT NULL CHECK (environment IN ('sandbox', 'production')),
    passed       INTEGER NOT NULL CHECK (passed IN (0, 1)),
    latency_ms   INTEGER,
    -- The ids of the failed cases, comma-separated; NULL when none failed.
    failed       TEXT,
    -- The `api_checks` row holding this run's full findings, when they were kept.
    check_id     INTEGER,
    PRIMARY KEY (api_id, at_ms, environment)
) STRICT, WITHOUT ROWID;
CREATE TABLE api_health_hourly (
    api_id         INTEGER NOT NULL,
    -- Start of the hour, unix seconds.
    hour           INTEGER NOT NULL,
    environment    TEXT NOT NULL CHECK (environment IN ('sandbox', 'production')),
    runs           INTEGER NOT NULL,
    passes         INTEGER NOT NULL,
    latency_sum    INTEGER NOT NULL,
    latency_count  INTEGER NOT NULL,
    latency_max    INTEGER NOT NULL,
    latency_p95    INTEGER NOT NULL,
    PRIMARY KEY (api_id, hour, environment)
) STRICT, WITHOUT ROWID;

-- migration 10: sandbox mode of API users' applications, kept apart from production in every register and report
-- An application's mode, chosen at registration and never changed: 'sandbox' applications reach only the banks'
-- sandboxes (`apis.sandbox_base_url`) and only the standard's test customers; any registered organisation in good
-- standing may have them, accredited or not. Provider systems are always 'production'. A consent's mode is its
-- application's (joined, never copied, so the two cannot disagree).
ALTER TABLE applications ADD COLUMN mode TEXT NOT NULL DEFAULT 'production'
    CHECK (mode IN ('production', 'sandbox') AND (mode = 'production' OR kind = 'api_user'));
CREATE INDEX applications_mode ON applications (mode, organisation_id);
-- Each exchange records the mode of the application that made it, so production reporting and billing leave the
-- sandbox's traffic out with one condition.
ALTER TABLE exchanges ADD COLUMN environment TEXT NOT NULL DEFAULT 'production'
    CHECK (environment IN ('production', 'sandbox'));

-- migration 11: trust hardening: the face check bound to its journey, cross-journey limits, captures used once
-- The random value the biometric vendor must echo for this journey's capture (given to the vendor's capture widget
-- on the page and sent with the check), so a capture made for one journey cannot pass another.
ALTER TABLE customer_sessions ADD COLUMN biometric_nonce TEXT;
-- Face checks and SMS sends, counted across journeys per IIN, per phone and per source address (each subject kept
-- as a SHA-256 of its kind and value), so limits per hour and per day hold however many journeys are started.
-- Rows older than a day are pruned; never in a snapshot.
CREATE TABLE trust_attempts (
    id       INTEGER PRIMARY KEY,
    kind     TEXT NOT NULL CHECK (kind IN ('face', 'sms')),
    subject  TEXT NOT NULL,
    at       TEXT NOT NULL
) STRICT;
CREATE INDEX trust_attempts_subject ON trust_attempts (kind, subject, at);
CREATE INDEX trust_attempts_at ON trust_attempts (at);
-- The vendor's capture references already checked (SHA-256 only): a capture is checked once, in one journey.
CREATE TABLE biometric_captures (
    capture_hash  TEXT PRIMARY KEY NOT NULL,
    used_at       TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX biometric_captures_used ON biometric_captures (used_at);

-- migration 12: indexes for the sweeps of expired sessions and old sign-in attempts (sessions now start only at sign-in)
-- `session::start` deletes sessions past their end or idle too long: without these each sign-in scanned the table.
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_last_seen ON sessions (last_seen_at);
-- The daily purge of sign-in attempts reads `at` alone (the older index leads with the source address).
CREATE INDEX login_attempts_at ON login_attempts (at);

-- migration 13: webhook failures in detail for the operator only; a BIN becomes exclusive only when accredited
-- Participants see a coarse `last_error` ("could not connect", "timed out"…), so that the delivery log cannot be used
-- to probe which hosts and ports answer; the operator's console shows this detail.
ALTER TABLE webhook_outbox ADD COLUMN last_error_detail TEXT NOT NULL DEFAULT '';
-- Registering claims no BIN: otherwise anyone could squat a bank's BIN before the bank registers. Several
-- registrations may name one BIN; the operator's accreditation makes it one organisation's (the partial unique
-- index), and it stays that organisation's while suspended or revoked. The table is rebuilt to drop the column's
-- UNIQUE (the runner turns foreign keys off for this and checks every reference before committing).
CREATE TABLE organisations_rebuilt (
    id              INTEGER PRIMARY KEY,
    bin             TEXT NOT NULL CHECK (length(bin) = 12 AND bin NOT GLOB '*[^0-9]*'),
    name            TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    licence_number  TEXT NOT NULL CHECK (length(licence_number) BETWEEN 1 AND 64),
    contact_email   TEXT NOT NULL,
    contact_phone   TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    website         TEXT NOT NULL DEFAULT '',
    logo            BLOB,
    logo_type       TEXT CHECK (logo_type IN ('image/png', 'image/jpeg')),
    status          TEXT NOT NULL DEFAULT 'registered'
                    CHECK (status IN ('registered', 'accredited', 'suspended', 'revoked')),
    status_reason   TEXT NOT NULL DEFAULT '',
    is_provider     INTEGER NOT NULL DEFAULT 0 CHECK (is_provider IN (0, 1)),
    is_user         INTEGER NOT NULL DEFAULT 0 CHECK (is_user IN (0, 1)),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    webhook_url     TEXT NOT NULL DEFAULT ''
) STRICT;
INSERT INTO organisations_rebuilt (id, bin, name, licence_number, contact_email, contact_phone, description, website,
                                   logo, logo_type, status, status_reason, is_provider, is_user, created_at,
                                   updated_at, webhook_url)
    SELECT id, bin, name, licence_number, contact_email, contact_phone, description, website, logo, logo_type, status,
           status_reason, is_provider, is_user, created_at, updated_at, webhook_url
    FROM organisations;
DROP TABLE organisations;
ALTER TABLE organisations_rebuilt RENAME TO organisations;
CREATE INDEX organisations_bin ON organisations (bin);
CREATE UNIQUE INDEX organisations_bin_accredited ON organisations (bin) WHERE status <> 'registered';

-- migration 14: reports: error codes of exchanges, hourly, daily and monthly usage rollups, consent changes
-- The ObErrorCode the API user was answered with, when the exchange was refused or failed; NULL when it was served.
ALTER TABLE exchanges ADD COLUMN error_code TEXT;
-- Usage rollups (`crate::reports`), kept by the meter's batch writer in the same transaction as the raw rows (so a
-- restart can neither lose nor double count a batch), read by every report instead of the raw exchanges (which are
-- pruned after `reports.raw_retention_days`). Hourly rows are kept `reports.hourly_retention_days`, daily and
-- monthly rows for years. Keys have no NULLs (a NULL never equals another in a key): 0 and '' stand for "none".
-- Latency is a fixed histogram, bucket bNN counting latencies up to its bound in milliseconds (the bound of the one
-- before excluded): 5, 10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 30000,
-- above (b19); the percentiles of any set of rows are read from the sums of these columns.
CREATE TABLE usage_hourly (
    -- Start of the UTC hour, unix seconds.
    hour                      INTEGER NOT NULL,
    environment               TEXT NOT NULL CHECK (environment IN ('production', 'sandbox')),
    -- 0 when no bank was called (a request refused by the platform).
    provider_organisation_id  INTEGER NOT NULL,
    user_organisation_id      INTEGER NOT NULL,
    application_id            INTEGER NOT NULL,
    -- 0 when no API of a bank was reached.
    api_id                    INTEGER NOT NULL,
    endpoint                  TEXT NOT NULL,
    status_class              TEXT NOT NULL CHECK (status_class IN ('1xx', '2xx', '3xx', '4xx', '5xx')),
    -- '' when the exchange was not refused.
    error_code                TEXT NOT NULL,
    requests                  INTEGER NOT NULL,
    bytes                     INTEGER NOT NULL,
    latency_sum               INTEGER NOT NULL,
    latency_max               INTEGER NOT NULL,
    b00 INTEGER NOT NULL,
    b01 INTEGER NOT NULL,
    b02 INTEGER NOT NULL,
    b03 INTEGER NOT NULL,
    b04 INTEGER NOT NULL,
    b05 INTEGER NOT NULL,
    b06 INTEGER NOT NULL,
    b07 INTEGER NOT NULL,
    b08 INTEGER NOT NULL,
    b09 INTEGER NOT NULL,
    b10 INTEGER NOT NULL,
    b11 INTEGER NOT NULL,
    b12 INTEGER NOT NULL,
    b13 INTEGER NOT NULL,
    b14 INTEGER NOT NULL,
    b15 INTEGER NOT NULL,
    b16 INTEGER NOT NULL,
    b17 INTEGER NOT NULL,
    b18 INTEGER NOT NULL,
    b19 INTEGER NOT NULL,
    PRIMARY KEY (hour, environment, provider_organisation_id, user_organisation_id, application_id, api_id, endpoint,
        status_class, error_code)
) STRICT, WITHOUT ROWID;
CREATE INDEX usage_hourly_provider ON usage_hourly (provider_organisation_id, hour);
CREATE INDEX usage_hourly_user ON usage_hourly (user_organisation_id, hour);
CREATE TABLE usage_daily (
    -- The day in the operator's time zone (`time_zone`) when the rows were written, YYYY-MM-DD.
    day                       TEXT NOT NULL CHECK (length(day) = 10),
    environment               TEXT NOT NULL CHECK (environment IN ('production', 'sandbox')),
    -- 0 when no bank was called (a request refused by the platform).
    provider_organisation_id  INTEGER NOT NULL,
    user_organisation_id      INTEGER NOT NULL,
    application_id            INTEGER NOT NULL,
    -- 0 when no API of a bank was reached.
    api_id                    INTEGER NOT NULL,
    endpoint                  TEXT NOT NULL,
    status_class              TEXT NOT NULL CHECK (status_class IN ('1xx', '2xx', '3xx', '4xx', '5xx')),
    -- '' when the exchange was not refused.
    error_code                TEXT NOT NULL,
    requests                  INTEGER NOT NULL,
    bytes                     INTEGER NOT NULL,
    latency_sum               INTEGER NOT NULL,
    latency_max               INTEGER NOT NULL,
    b00 INTEGER NOT NULL,
    b01 INTEGER NOT NULL,
    b02 INTEGER NOT NULL,
    b03 INTEGER NOT NULL,
    b04 INTEGER NOT NULL,
    b05 INTEGER NOT NULL,
    b06 INTEGER NOT NULL,
    b07 INTEGER NOT NULL,
    b08 INTEGER NOT NULL,
    b09 INTEGER NOT NULL,
    b10 INTEGER NOT NULL,
    b11 INTEGER NOT NULL,
    b12 INTEGER NOT NULL,
    b13 INTEGER NOT NULL,
    b14 INTEGER NOT NULL,
    b15 INTEGER NOT NULL,
    b16 INTEGER NOT NULL,
    b17 INTEGER NOT NULL,
    b18 INTEGER NOT NULL,
    b19 INTEGER NOT NULL,
    PRIMARY KEY (day, environment, provider_organisation_id, user_organisation_id, application_id, api_id, endpoint,
        status_class, error_code)
) STRICT, WITHOUT ROWID;
CREATE INDEX usage_daily_provider ON usage_daily (provider_organisation_id, day);
CREATE INDEX usage_daily_user ON usage_daily (user_organisation_id, day);
CREATE TABLE usage_monthly (
    -- The month in the operator's time zone, YYYY-MM: a year's or a month's report reads a few thousand rows.
    month                     TEXT NOT NULL CHECK (length(month) = 7),
    environment               TEXT NOT NULL CHECK (environment IN ('production', 'sandbox')),
    -- 0 when no bank was called (a request refused by the platform).
    provider_organisation_id  INTEGER NOT NULL,
    user_organisation_id      INTEGER NOT NULL,
    application_id            INTEGER NOT NULL,
    -- 0 when no API of a bank was reached.
    api_id                    INTEGER NOT NULL,
    endpoint                  TEXT NOT NULL,
    status_class              TEXT NOT NULL CHECK (status_class IN ('1xx', '2xx', '3xx', '4xx', '5xx')),
    -- '' when the exchange was not refused.
    error_code                TEXT NOT NULL,
    requests                  INTEGER NOT NULL,
    bytes                     INTEGER NOT NULL,
    latency_sum               INTEGER NOT NULL,
    latency_max               INTEGER NOT NULL,
    b00 INTEGER NOT NULL,
    b01 INTEGER NOT NULL,
    b02 INTEGER NOT NULL,
    b03 INTEGER NOT NULL,
    b04 INTEGER NOT NULL,
    b05 INTEGER NOT NULL,
    b06 INTEGER NOT NULL,
    b07 INTEGER NOT NULL,
    b08 INTEGER NOT NULL,
    b09 INTEGER NOT NULL,
    b10 INTEGER NOT NULL,
    b11 INTEGER NOT NULL,
    b12 INTEGER NOT NULL,
    b13 INTEGER NOT NULL,
    b14 INTEGER NOT NULL,
    b15 INTEGER NOT NULL,
    b16 INTEGER NOT NULL,
    b17 INTEGER NOT NULL,
    b18 INTEGER NOT NULL,
    b19 INTEGER NOT NULL,
    PRIMARY KEY (month, environment, provider_organisation_id, user_organisation_id, application_id, api_id, endpoint,
        status_class, error_code)
) STRICT, WITHOUT ROWID;
CREATE INDEX usage_monthly_provider ON usage_monthly (provider_organisation_id, month);
CREATE INDEX usage_monthly_user ON usage_monthly (user_organisation_id, month);
-- The exchanges metered before this migration, rolled up once (the one full scan): first into quarter hours (every
-- time zone's offset is a whole number of quarter hours, so a quarter hour lies within one local day), then into
-- hours and into the operator's days and months (`kopir_local_day`, a function the store gives every connection).
CREATE TEMP TABLE usage_backfill AS
SELECT unixepoch(at) / 900 * 900 AS slot, environment,
       coalesce(provider_organisation_id, 0) AS provider_organisation_id, user_organisation_id, application_id,
       coalesce(api_id, 0) AS api_id, endpoint,
       (status / 100) || 'xx' AS status_class, coalesce(error_code, '') AS error_code,
       count(*) AS requests, sum(bytes) AS bytes, sum(latency_ms) AS latency_sum, max(latency_ms) AS latency_max,
       sum(latency_ms <= 5) AS b00,
       sum(latency_ms > 5 AND latency_ms <= 10) AS b01,
       sum(latency_ms > 10 AND latency_ms <= 25) AS b02,
       sum(latency_ms > 25 AND latency_ms <= 50) AS b03,
       sum(latency_ms > 50 AND latency_ms <= 75) AS b04,
       sum(latency_ms > 75 AND latency_ms <= 100) AS b05,
       sum(latency_ms > 100 AND latency_ms <= 150) AS b06,
       sum(latency_ms > 150 AND latency_ms <= 200) AS b07,
       sum(latency_ms > 200 AND latency_ms <= 300) AS b08,
       sum(latency_ms > 300 AND latency_ms <= 400) AS b09,
       sum(latency_ms > 400 AND latency_ms <= 500) AS b10,
       sum(latency_ms > 500 AND latency_ms <= 750) AS b11,
       sum(latency_ms > 750 AND latency_ms <= 1000) AS b12,
       sum(latency_ms > 1000 AND latency_ms <= 1500) AS b13,
       sum(latency_ms > 1500 AND latency_ms <= 2000) AS b14,
       sum(latency_ms > 2000 AND latency_ms <= 3000) AS b15,
       sum(latency_ms > 3000 AND latency_ms <= 5000) AS b16,
       sum(latency_ms > 5000 AND latency_ms <= 10000) AS b17,
       sum(latency_ms > 10000 AND latency_ms <= 30000) AS b18,
       sum(latency_ms > 30000) AS b19
FROM exchanges
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
INSERT INTO usage_hourly (hour, environment, provider_organisation_id, user_organisation_id, application_id, api_id,
    endpoint, status_class, error_code, requests, bytes, latency_sum, latency_max, b00, b01, b02, b03, b04, b05, b06,
    b07, b08, b09, b10, b11, b12, b13, b14, b15, b16, b17, b18, b19)
SELECT slot / 3600 * 3600, environment, provider_organisation_id, user_organisation_id, application_id, api_id,
    endpoint, status_class, error_code, sum(requests), sum(bytes), sum(latency_sum), max(latency_max), sum(b00),
    sum(b01), sum(b02), sum(b03), sum(b04), sum(b05), sum(b06), sum(b07), sum(b08), sum(b09), sum(b10), sum(b11),
    sum(b12), sum(b13), sum(b14), sum(b15), sum(b16), sum(b17), sum(b18), sum(b19)
FROM usage_backfill
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
INSERT INTO usage_daily (day, environment, provider_organisation_id, user_organisation_id, application_id, api_id,
    endpoint, status_class, error_code, requests, bytes, latency_sum, latency_max, b00, b01, b02, b03, b04, b05, b06,
    b07, b08, b09, b10, b11, b12, b13, b14, b15, b16, b17, b18, b19)
SELECT kopir_local_day(slot), environment, provider_organisation_id, user_organisation_id, application_id, api_id,
    endpoint, status_class, error_code, sum(requests), sum(bytes), sum(latency_sum), max(latency_max), sum(b00),
    sum(b01), sum(b02), sum(b03), sum(b04), sum(b05), sum(b06), sum(b07), sum(b08), sum(b09), sum(b10), sum(b11),
    sum(b12), sum(b13), sum(b14), sum(b15), sum(b16), sum(b17), sum(b18), sum(b19)
FROM usage_backfill
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
INSERT INTO usage_monthly (month, environment, provider_organisation_id, user_organisation_id, application_id, api_id,
    endpoint, status_class, error_code, requests, bytes, latency_sum, latency_max, b00, b01, b02, b03, b04, b05, b06,
    b07, b08, b09, b10, b11, b12, b13, b14, b15, b16, b17, b18, b19)
SELECT substr(kopir_local_day(slot), 1, 7), environment, provider_organisation_id, user_organisation_id,
    application_id, api_id, endpoint, status_class, error_code, sum(requests), sum(bytes), sum(latency_sum),
    max(latency_max), sum(b00), sum(b01), sum(b02), sum(b03), sum(b04), sum(b05), sum(b06), sum(b07), sum(b08),
    sum(b09), sum(b10), sum(b11), sum(b12), sum(b13), sum(b14), sum(b15), sum(b16), sum(b17), sum(b18), sum(b19)
FROM usage_backfill
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
DROP TABLE usage_backfill;
-- Consents' status changes counted per quarter hour (see above), per bank named and per API user's application, kept
-- by a trigger on `consent_history` (so every writer of the history keeps it, in the same transaction). A change
-- that concerns the whole consent counts once for each bank the consent names; one bank's revocation, for that bank.
CREATE TABLE consent_changes (
    -- Start of the quarter hour, unix seconds.
    slot                      INTEGER NOT NULL,
    environment               TEXT NOT NULL CHECK (environment IN ('production', 'sandbox')),
    provider_organisation_id  INTEGER NOT NULL,
    user_organisation_id      INTEGER NOT NULL,
    application_id            INTEGER NOT NULL,
    status                    TEXT NOT NULL,
    changes                   INTEGER NOT NULL,
    PRIMARY KEY (slot, environment, provider_organisation_id, user_organisation_id, application_id, status)
) STRICT, WITHOUT ROWID;
INSERT INTO consent_changes (slot, environment, provider_organisation_id, user_organisation_id, application_id, status,
                             changes)
SELECT unixepoch(h.at) / 900 * 900, a.mode, p.organisation_id, a.organisation_id, a.id, h.status, count(*)
FROM consent_history h
JOIN consents c ON c.id = h.consent_id
JOIN applications a ON a.id = c.application_id
JOIN consent_providers p ON p.consent_id = c.id AND (h.organisation_id IS NULL OR p.organisation_id = h.organisation_id)
GROUP BY 1, 2, 3, 4, 5, 6;
CREATE TRIGGER consent_changes_count AFTER INSERT ON consent_history
BEGIN
    INSERT INTO consent_changes (slot, environment, provider_organisation_id, user_organisation_id, application_id,
                                 status, changes)
    SELECT unixepoch(NEW.at) / 900 * 900, a.mode, p.organisation_id, a.organisation_id, a.id, NEW.status, 1
    FROM consents c
    JOIN applications a ON a.id = c.application_id
    JOIN consent_providers p ON p.consent_id = c.id
    WHERE c.id = NEW.consent_id AND (NEW.organisation_id IS NULL OR p.organisation_id = NEW.organisation_id)
    ON CONFLICT DO UPDATE SET changes = changes + 1;
END;
-- migration 15: availability by a stated rule: outages of APIs and of the platform, providers' maintenance windows
-- One row per outage: opened by the first failed call or check (a bank's fault, or the platform's own 5xx), closed
-- by the first success after it. At most one open outage per subject and environment (the partial unique index).
CREATE TABLE outages (
    id            INTEGER PRIMARY KEY,
    subject       TEXT NOT NULL CHECK (subject IN ('api', 'platform')),
    api_id        INTEGER REFERENCES apis (id),
    environment   TEXT NOT NULL CHECK (environment IN ('production', 'sandbox')),
    started_at    TEXT NOT NULL,
    ended_at      TEXT,
    first_status  INTEGER,
    cause         TEXT NOT NULL CHECK (cause IN ('bank_failure', 'bank_timeout', 'check_failed', 'platform_error')),
    detail        TEXT NOT NULL DEFAULT '' CHECK (length(detail) <= 200),
    source        TEXT NOT NULL CHECK (source IN ('traffic', 'checks', 'platform')),
    ended_by      TEXT CHECK (ended_by IN ('traffic', 'checks', 'platform')),
    CHECK ((subject = 'api') = (api_id IS NOT NULL)),
    CHECK ((ended_at IS NULL) = (ended_by IS NULL)),
    CHECK (ended_at IS NULL OR ended_at >= started_at)
) STRICT;
CREATE UNIQUE INDEX outages_open ON outages (subject, ifnull(api_id, 0), environment) WHERE ended_at IS NULL;
CREATE INDEX outages_api ON outages (api_id, environment, started_at);
CREATE INDEX outages_subject ON outages (subject, environment, started_at);
-- Maintenance a provider declares in advance (or while it runs) for one API or all its APIs: shown apart, never
-- counted as downtime, from the moment it was declared until it ends or is cancelled.
CREATE TABLE maintenance_windows (
    id               INTEGER PRIMARY KEY,
    organisation_id  INTEGER NOT NULL REFERENCES organisations (id),
    api_id           INTEGER REFERENCES apis (id),
    starts_at        TEXT NOT NULL,
    ends_at          TEXT NOT NULL,
    reason           TEXT NOT NULL CHECK (length(reason) BETWEEN 3 AND 500),
    declared_by      TEXT NOT NULL,
    declared_at      TEXT NOT NULL,
    cancelled_at     TEXT,
    cancelled_by     TEXT,
    CHECK (ends_at > starts_at),
    CHECK ((cancelled_at IS NULL) = (cancelled_by IS NULL))
) STRICT;
CREATE INDEX maintenance_windows_org ON maintenance_windows (organisation_id, starts_at);
CREATE INDEX maintenance_windows_ends ON maintenance_windows (ends_at);
-- migration 16: SLA breaches of bank APIs: the p95 latency of an API's production calls over the last hour above its SLA
-- One row per breach, from the evaluation that saw it begin to the one that saw it end; at most one open per API.
-- The provider hears of each breach once at its start (`api.sla_breached`) and once at its end (`api.sla_restored`).
CREATE TABLE sla_breaches (
    id            INTEGER PRIMARY KEY,
    api_id        INTEGER NOT NULL REFERENCES apis (id),
    started_at    TEXT NOT NULL,
    ended_at      TEXT,
    sla_ms        INTEGER NOT NULL CHECK (sla_ms > 0),
    -- The p95 and the number of calls of the window in which the breach was found; `worst_p95_ms` the highest since.
    p95_ms        INTEGER NOT NULL,
    worst_p95_ms  INTEGER NOT NULL,
    calls         INTEGER NOT NULL CHECK (calls > 0),
    CHECK (ended_at IS NULL OR ended_at >= started_at)
) STRICT;
CREATE UNIQUE INDEX sla_breaches_open ON sla_breaches (api_id) WHERE ended_at IS NULL;
CREATE INDEX sla_breaches_started ON sla_breaches (started_at);
-- migration 17: the operator's usage rollups: hourly, daily and monthly figures without the API-user and application
-- columns, for platform-wide reports (the dashboard, the monthly report): a few hundred rows a period instead of
-- thousands. Kept by the meter's writer with the others (`reports::rollup::add`, same transaction), back-filled here
-- from the rollups they summarise; each equals the sum of its fine rollup over the user and application columns.
CREATE TABLE usage_platform_hourly (
    -- Start of the UTC hour, unix seconds; the other columns as in usage_hourly.
    hour                      INTEGER NOT NULL,
    environment               TEXT NOT NULL CHECK (environment IN ('production', 'sandbox')),
    provider_organisation_id  INTEGER NOT NULL,
    api_id                    INTEGER NOT NULL,
    endpoint                  TEXT NOT NULL,
    status_class              TEXT NOT NULL CHECK (status_class IN ('1xx', '2xx', '3xx', '4xx', '5xx')),
    error_code                TEXT NOT NULL,
    requests                  INTEGER NOT NULL,
    bytes                     INTEGER NOT NULL,
    latency_sum               INTEGER NOT NULL,
    latency_max               INTEGER NOT NULL,
    b00 INTEGER NOT NULL,
    b01 INTEGER NOT NULL,
    b02 INTEGER NOT NULL,
    b03 INTEGER NOT NULL,
    b04 INTEGER NOT NULL,
    b05 INTEGER NOT NULL,
    b06 INTEGER NOT NULL,
    b07 INTEGER NOT NULL,
    b08 INTEGER NOT NULL,
    b09 INTEGER NOT NULL,
    b10 INTEGER NOT NULL,
    b11 INTEGER NOT NULL,
    b12 INTEGER NOT NULL,
    b13 INTEGER NOT NULL,
    b14 INTEGER NOT NULL,
    b15 INTEGER NOT NULL,
    b16 INTEGER NOT NULL,
    b17 INTEGER NOT NULL,
    b18 INTEGER NOT NULL,
    b19 INTEGER NOT NULL,
    PRIMARY KEY (hour, environment, provider_organisation_id, api_id, endpoint, status_class, error_code)
) STRICT, WITHOUT ROWID;
CREATE TABLE usage_platform_daily (
    -- The operator's local day, YYYY-MM-DD; the other columns as in usage_daily.
    day                       TEXT NOT NULL CHECK (length(day) = 10),
    environment               TEXT NOT NULL CHECK (environment IN ('production', 'sandbox')),
    provider_organisation_id  INTEGER NOT NULL,
    api_id                    INTEGER NOT NULL,
    endpoint                  TEXT NOT NULL,
    status_class              TEXT NOT NULL CHECK (status_class IN ('1xx', '2xx', '3xx', '4xx', '5xx')),
    error_code                TEXT NOT NULL,
    requests                  INTEGER NOT NULL,
    bytes                     INTEGER NOT NULL,
    latency_sum               INTEGER NOT NULL,
    latency_max               INTEGER NOT NULL,
    b00 INTEGER NOT NULL,
    b01 INTEGER NOT NULL,
    b02 INTEGER NOT NULL,
    b03 INTEGER NOT NULL,
    b04 INTEGER NOT NULL,
    b05 INTEGER NOT NULL,
    b06 INTEGER NOT NULL,
    b07 INTEGER NOT NULL,
    b08 INTEGER NOT NULL,
    b09 INTEGER NOT NULL,
    b10 INTEGER NOT NULL,
    b11 INTEGER NOT NULL,
    b12 INTEGER NOT NULL,
    b13 INTEGER NOT NULL,
    b14 INTEGER NOT NULL,
    b15 INTEGER NOT NULL,
    b16 INTEGER NOT NULL,
    b17 INTEGER NOT NULL,
    b18 INTEGER NOT NULL,
    b19 INTEGER NOT NULL,
    PRIMARY KEY (day, environment, provider_organisation_id, api_id, endpoint, status_class, error_code)
) STRICT, WITHOUT ROWID;
CREATE TABLE usage_platform_monthly (
    -- The operator's local month, YYYY-MM; the other columns as in usage_monthly.
    month                     TEXT NOT NULL CHECK (length(month) = 7),
    environment               TEXT NOT NULL CHECK (environment IN ('production', 'sandbox')),
    provider_organisation_id  INTEGER NOT NULL,
    api_id                    INTEGER NOT NULL,
    endpoint                  TEXT NOT NULL,
    status_class              TEXT NOT NULL CHECK (status_class IN ('1xx', '2xx', '3xx', '4xx', '5xx')),
    error_code                TEXT NOT NULL,
    requests                  INTEGER NOT NULL,
    bytes                     INTEGER NOT NULL,
    latency_sum               INTEGER NOT NULL,
    latency_max               INTEGER NOT NULL,
    b00 INTEGER NOT NULL,
    b01 INTEGER NOT NULL,
    b02 INTEGER NOT NULL,
    b03 INTEGER NOT NULL,
    b04 INTEGER NOT NULL,
    b05 INTEGER NOT NULL,
    b06 INTEGER NOT NULL,
    b07 INTEGER NOT NULL,
    b08 INTEGER NOT NULL,
    b09 INTEGER NOT NULL,
    b10 INTEGER NOT NULL,
    b11 INTEGER NOT NULL,
    b12 INTEGER NOT NULL,
    b13 INTEGER NOT NULL,
    b14 INTEGER NOT NULL,
    b15 INTEGER NOT NULL,
    b16 INTEGER NOT NULL,
    b17 INTEGER NOT NULL,
    b18 INTEGER NOT NULL,
    b19 INTEGER NOT NULL,
    PRIMARY KEY (month, environment, provider_organisation_id, api_id, endpoint, status_class, error_code)
) STRICT, WITHOUT ROWID;
INSERT INTO usage_platform_hourly (hour, environment, provider_organisation_id, api_id, endpoint, status_class,
    error_code, requests, bytes, latency_sum, latency_max, b00, b01, b02, b03, b04, b05, b06, b07, b08, b09, b10, b11,
    b12, b13, b14, b15, b16, b17, b18, b19)
SELECT hour, environment, provider_organisation_id, api_id, endpoint, status_class, error_code, sum(requests),
    sum(bytes), sum(latency_sum), max(latency_max), sum(b00), sum(b01), sum(b02), sum(b03), sum(b04), sum(b05),
    sum(b06), sum(b07), sum(b08), sum(b09), sum(b10), sum(b11), sum(b12), sum(b13), sum(b14), sum(b15), sum(b16),
    sum(b17), sum(b18), sum(b19)
FROM usage_hourly
GROUP BY 1, 2, 3, 4, 5, 6, 7;
INSERT INTO usage_platform_daily (day, environment, provider_organisation_id, api_id, endpoint, status_class,
    error_code, requests, bytes, latency_sum, latency_max, b00, b01, b02, b03, b04, b05, b06, b07, b08, b09, b10, b11,
    b12, b13, b14, b15, b16, b17, b18, b19)
SELECT day, environment, provider_organisation_id, api_id, endpoint, status_class, error_code, sum(requests),
    sum(bytes), sum(latency_sum), max(latency_max), sum(b00), sum(b01), sum(b02), sum(b03), sum(b04), sum(b05),
    sum(b06), sum(b07), sum(b08), sum(b09), sum(b10), sum(b11), sum(b12), sum(b13), sum(b14), sum(b15), sum(b16),
    sum(b17), sum(b18), sum(b19)
FROM usage_daily
GROUP BY 1, 2, 3, 4, 5, 6, 7;
INSERT INTO usage_platform_monthly (month, environment, provider_organisation_id, api_id, endpoint, status_class,
    error_code, requests, bytes, latency_sum, latency_max, b00, b01, b02, b03, b04, b05, b06, b07, b08, b09, b10, b11,
    b12, b13, b14, b15, b16, b17, b18, b19)
SELECT month, environment, provider_organisation_id, api_id, endpoint, status_class, error_code, sum(requests),
    sum(bytes), sum(latency_sum), max(latency_max), sum(b00), sum(b01), sum(b02), sum(b03), sum(b04), sum(b05),
    sum(b06), sum(b07), sum(b08), sum(b09), sum(b10), sum(b11), sum(b12), sum(b13), sum(b14), sum(b15), sum(b16),
    sum(b17), sum(b18), sum(b19)
FROM usage_monthly
GROUP BY 1, 2, 3, 4, 5, 6, 7;
-- migration 18: consents by status and customers with a live consent at any instant, without reading the registry
-- Flows of the consents' figures per quarter hour (as `consent_changes`, so local days and months of any zone are
-- whole slots): how many consents entered and left each status, how many customers got their first authorised
-- consent (`live_customer` entered) or lost their last (left), and one bank's revocations (`bank_revocation`,
-- entered only). `consent_totals` holds the same sums over all time, so a figure at an instant is the total less
-- the flows since: recent periods read a few slots, never the registry. Kept by triggers on `consents` and
-- `consent_providers` (every writer, same transaction); back-filled here from the registry's dated columns.
CREATE TABLE consent_flows (
    environment  TEXT NOT NULL CHECK (environment IN ('production', 'sandbox')),
    -- Start of the quarter hour, unix seconds.
    slot         INTEGER NOT NULL,
    -- A consent status, 'live_customer' or 'bank_revocation'.
    figure       TEXT NOT NULL,
    entered      INTEGER NOT NULL,
    exited       INTEGER NOT NULL,
    PRIMARY KEY (environment, slot, figure)
) STRICT, WITHOUT ROWID;
CREATE TABLE consent_totals (
    environment  TEXT NOT NULL CHECK (environment IN ('production', 'sandbox')),
    figure       TEXT NOT NULL,
    entered      INTEGER NOT NULL,
    exited       INTEGER NOT NULL,
    PRIMARY KEY (environment, figure)
) STRICT, WITHOUT ROWID;
-- Authorised consents per customer and environment: a customer is live while this is above zero.
CREATE TABLE consent_live_customers (
    environment  TEXT NOT NULL CHECK (environment IN ('production', 'sandbox')),
    customer_id  INTEGER NOT NULL,
    authorised   INTEGER NOT NULL CHECK (authorised >= 0),
    PRIMARY KEY (environment, customer_id)
) STRICT, WITHOUT ROWID;
-- Back-fill. Status flows: every consent entered AwaitingAuthorisation when created; an authorised one left it for
-- Authorised when authorised; one in a final status entered it when its status was last set, leaving the status
-- it had before (Authorised if it was ever authorised).
CREATE TEMP TABLE consent_flow_events AS
SELECT a.mode AS environment, unixepoch(c.created_at) / 900 * 900 AS slot, 'AwaitingAuthorisation' AS figure,
       1 AS entered, 0 AS exited
FROM consents c JOIN applications a ON a.id = c.application_id
UNION ALL
SELECT a.mode, unixepoch(c.authorised_at) / 900 * 900, 'AwaitingAuthorisation', 0, 1
FROM consents c JOIN applications a ON a.id = c.application_id WHERE c.authorised_at IS NOT NULL
UNION ALL
SELECT a.mode, unixepoch(c.authorised_at) / 900 * 900, 'Authorised', 1, 0
FROM consents c JOIN applications a ON a.id = c.application_id WHERE c.authorised_at IS NOT NULL
UNION ALL
SELECT a.mode, unixepoch(c.status_updated_at) / 900 * 900,
       CASE WHEN c.authorised_at IS NOT NULL THEN 'Authorised' ELSE 'AwaitingAuthorisation' END, 0, 1
FROM consents c JOIN applications a ON a.id = c.application_id
WHERE c.status NOT IN ('AwaitingAuthorisation', 'Authorised')
UNION ALL
SELECT a.mode, unixepoch(c.status_updated_at) / 900 * 900, c.status, 1, 0
FROM consents c JOIN applications a ON a.id = c.application_id
WHERE c.status NOT IN ('AwaitingAuthorisation', 'Authorised')
UNION ALL
SELECT a.mode, unixepoch(p.revoked_at) / 900 * 900, 'bank_revocation', 1, 0
FROM consent_providers p JOIN consents c ON c.id = p.consent_id JOIN applications a ON a.id = c.application_id
WHERE p.revoked_at IS NOT NULL;
-- Live customers: each customer's authorised consents counted through time (an authorisation before an ending at
-- the same instant); the customer enters when the count reaches one and leaves when it falls to zero.
INSERT INTO consent_flow_events (environment, slot, figure, entered, exited)
SELECT environment, slot, 'live_customer', sum(delta = 1 AND live = 1), sum(delta = -1 AND live = 0)
FROM (
    SELECT environment, unixepoch(at) / 900 * 900 AS slot, delta,
           sum(delta) OVER (PARTITION BY environment, customer_id ORDER BY at, delta DESC
                            ROWS UNBOUNDED PRECEDING) AS live
    FROM (
        SELECT a.mode AS environment, c.customer_id, c.authorised_at AS at, 1 AS delta
        FROM consents c JOIN applications a ON a.id = c.application_id WHERE c.authorised_at IS NOT NULL
        UNION ALL
        SELECT a.mode, c.customer_id, c.status_updated_at, -1
        FROM consents c JOIN applications a ON a.id = c.application_id
        WHERE c.authorised_at IS NOT NULL AND c.status <> 'Authorised'
    )
)
GROUP BY 1, 2;
INSERT INTO consent_flows (environment, slot, figure, entered, exited)
SELECT environment, slot, figure, sum(entered), sum(exited) FROM consent_flow_events
GROUP BY 1, 2, 3 HAVING sum(entered) > 0 OR sum(exited) > 0;
INSERT INTO consent_totals (environment, figure, entered, exited)
SELECT environment, figure, sum(entered), sum(exited) FROM consent_flows GROUP BY 1, 2;
DROP TABLE consent_flow_events;
INSERT INTO consent_live_customers (environment, customer_id, authorised)
SELECT a.mode, c.customer_id, count(*) FROM consents c JOIN applications a ON a.id = c.application_id
WHERE c.status = 'Authorised' GROUP BY 1, 2;
-- One flow into both tables; the triggers below insert into this view.
CREATE VIEW consent_flow_writes (environment, slot, figure, entered, exited) AS
SELECT environment, slot, figure, entered, exited FROM consent_flows;
CREATE TRIGGER consent_flow_writes_add INSTEAD OF INSERT ON consent_flow_writes
BEGIN
    INSERT INTO consent_flows (environment, slot, figure, entered, exited)
    VALUES (NEW.environment, NEW.slot, NEW.figure, NEW.entered, NEW.exited)
    ON CONFLICT DO UPDATE SET entered = entered + excluded.entered, exited = exited + excluded.exited;
    INSERT INTO consent_totals (environment, figure, entered, exited)
    VALUES (NEW.environment, NEW.figure, NEW.entered, NEW.exited)
    ON CONFLICT DO UPDATE SET entered = entered + excluded.entered, exited = exited + excluded.exited;
END;
CREATE TRIGGER consent_flows_created AFTER INSERT ON consents
BEGIN
    INSERT INTO consent_flow_writes (environment, slot, figure, entered, exited)
    SELECT a.mode, unixepoch(NEW.status_updated_at) / 900 * 900, NEW.status, 1, 0
    FROM applications a WHERE a.id = NEW.application_id;
    -- A consent stored already authorised (an import) makes its customer live too.
    INSERT INTO consent_live_customers (environment, customer_id, authorised)
    SELECT a.mode, NEW.customer_id, 1 FROM applications a
    WHERE a.id = NEW.application_id AND NEW.status = 'Authorised' AND NEW.customer_id IS NOT NULL
    ON CONFLICT DO UPDATE SET authorised = authorised + 1;
    INSERT INTO consent_flow_writes (environment, slot, figure, entered, exited)
    SELECT l.environment, unixepoch(NEW.status_updated_at) / 900 * 900, 'live_customer', 1, 0
    FROM applications a JOIN consent_live_customers l ON l.environment = a.mode AND l.customer_id = NEW.customer_id
    WHERE a.id = NEW.application_id AND NEW.status = 'Authorised' AND l.authorised = 1;
END;
CREATE TRIGGER consent_flows_status AFTER UPDATE OF status ON consents WHEN OLD.status <> NEW.status
BEGIN
    INSERT INTO consent_flow_writes (environment, slot, figure, entered, exited)
    SELECT a.mode, unixepoch(NEW.status_updated_at) / 900 * 900, OLD.status, 0, 1
    FROM applications a WHERE a.id = NEW.application_id;
    INSERT INTO consent_flow_writes (environment, slot, figure, entered, exited)
    SELECT a.mode, unixepoch(NEW.status_updated_at) / 900 * 900, NEW.status, 1, 0
    FROM applications a WHERE a.id = NEW.application_id;
    -- The customer's authorised consents, and whether this made them live or ended it.
    INSERT INTO consent_live_customers (environment, customer_id, authorised)
    SELECT a.mode, NEW.customer_id, 1 FROM applications a
    WHERE a.id = NEW.application_id AND NEW.status = 'Authorised' AND NEW.customer_id IS NOT NULL
    ON CONFLICT DO UPDATE SET authorised = authorised + 1;
    UPDATE consent_live_customers SET authorised = authorised - 1
    WHERE OLD.status = 'Authorised' AND customer_id = NEW.customer_id
      AND environment = (SELECT mode FROM applications WHERE id = NEW.application_id);
    INSERT INTO consent_flow_writes (environment, slot, figure, entered, exited)
    SELECT l.environment, unixepoch(NEW.status_updated_at) / 900 * 900, 'live_customer',
           NEW.status = 'Authorised', OLD.status = 'Authorised'
    FROM applications a JOIN consent_live_customers l ON l.environment = a.mode AND l.customer_id = NEW.customer_id
    WHERE a.id = NEW.application_id
      AND ((NEW.status = 'Authorised' AND l.authorised = 1) OR (OLD.status = 'Authorised' AND l.authorised = 0));
END;
CREATE TRIGGER consent_flows_bank_revoked AFTER UPDATE OF revoked_at ON consent_providers
WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
BEGIN
    INSERT INTO consent_flow_writes (environment, slot, figure, entered, exited)
    SELECT a.mode, unixepoch(NEW.revoked_at) / 900 * 900, 'bank_revocation', 1, 0
    FROM consents c JOIN applications a ON a.id = c.application_id WHERE c.id = NEW.consent_id;
END;
-- migration 19: consents the customer can narrow: the permissions the API user marks required (a JSON array; the
-- accounts permission is always required), the others the customer may untick on the consent screen or drop later;
-- the purpose in several languages
ALTER TABLE consents ADD COLUMN required_permissions TEXT NOT NULL DEFAULT '[]';
-- The purpose in other languages when the API user gave it in several (a JSON object: language code → text).
ALTER TABLE consents ADD COLUMN purpose_translations TEXT NOT NULL DEFAULT '{}';
-- migration 20: operating documents — the accession agreements' versions and their electronic acceptance
-- A version of an accession agreement (its text comes with the binary, in three languages): its number, the SHA-256
-- over the three texts, when the platform recorded it and by when participants are asked to accept it.
CREATE TABLE agreement_versions (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('provider', 'user')),
    version      TEXT NOT NULL CHECK (length(version) BETWEEN 1 AND 32),
    sha256       TEXT NOT NULL CHECK (length(sha256) = 64),
    published_at TEXT NOT NULL,
    accept_by    TEXT NOT NULL,
    UNIQUE (kind, version),
    UNIQUE (kind, sha256)
) STRICT;
-- A participant's acceptance of one version, given by one of its administrators, in the language read.
CREATE TABLE agreement_acceptances (
    id              INTEGER PRIMARY KEY,
    version_id      INTEGER NOT NULL REFERENCES agreement_versions (id),
    organisation_id INTEGER NOT NULL REFERENCES organisations (id),
    user_id         INTEGER NOT NULL REFERENCES users (id),
    lang            TEXT NOT NULL CHECK (lang IN ('en', 'ru', 'kk')),
    accepted_at     TEXT NOT NULL,
    UNIQUE (version_id, organisation_id)
) STRICT;
CREATE INDEX agreement_acceptances_by_organisation ON agreement_acceptances (organisation_id);



-- migration 21: request management: the classifier (versioned), requests with their parties, SLA clocks in working time, comments and notes, attachments, history, breaches
-- The classifier: a tree of categories kept by the operator's administrators. Each names who executes its requests —
-- the operator's team by role (`operator`), the counterparty the request's object points to (`counterparty`), or
-- both parties of the object with the operator as arbiter (`parties`) — and SLA targets per priority, in working
-- minutes of the operator's calendar. Every change bumps the category's version and keeps the definition as it then
-- was (`request_category_versions`); a request records the version it was classified under.
CREATE TABLE request_categories (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE CHECK (length(code) BETWEEN 1 AND 64),
    parent_id   INTEGER REFERENCES request_categories (id),
    name_en     TEXT NOT NULL CHECK (length(name_en) BETWEEN 1 AND 200),
    name_ru     TEXT NOT NULL CHECK (length(name_ru) BETWEEN 1 AND 200),
    name_kk     TEXT NOT NULL CHECK (length(name_kk) BETWEEN 1 AND 200),
    executor    TEXT NOT NULL CHECK (executor IN ('operator', 'counterparty', 'parties')),
    -- The operator's team that executes (or arbitrates, or takes the request when its object names no counterparty).
    team        TEXT NOT NULL CHECK (team IN ('operator_staff', 'operator_admin')),
    active      INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    version     INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    updated_at  TEXT NOT NULL
) STRICT;

CREATE TABLE request_sla_targets (
    category_id             INTEGER NOT NULL REFERENCES request_categories (id),
    priority                TEXT NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'critical')),
    first_response_minutes  INTEGER NOT NULL CHECK (first_response_minutes > 0),
    resolution_minutes      INTEGER NOT NULL CHECK (resolution_minutes >= first_response_minutes),
    PRIMARY KEY (category_id, priority)
) STRICT, WITHOUT ROWID;

CREATE TABLE request_category_versions (
    category_id  INTEGER NOT NULL REFERENCES request_categories (id),
    version      INTEGER NOT NULL,
    -- The category and its targets as of this version (JSON).
    definition   TEXT NOT NULL,
    changed_at   TEXT NOT NULL,
    changed_by   TEXT NOT NULL,
    PRIMARY KEY (category_id, version)
) STRICT, WITHOUT ROWID;

INSERT INTO request_categories (id, code, parent_id, name_en, name_ru, name_kk, executor, team, updated_at) VALUES
    (1, 'integration', NULL, 'Integration question', 'Вопрос по интеграции', 'Интеграция бойынша сұрақ', 'operator', 'operator_staff', '2026-12-01T00:00:00Z'),
    (2, 'incident', NULL, 'Incident', 'Инцидент', 'Инцидент', 'counterparty', 'operator_staff', '2026-12-01T00:00:00Z'),
    (3, 'incident.api', 2, 'Incident: an API misbehaves', 'Инцидент: сбой API', 'Инцидент: API ақауы', 'counterparty', 'operator_staff', '2026-12-01T00:00:00Z'),
    (4, 'incident.application', 2, 'Incident: an application misbehaves', 'Инцидент: некорректная работа приложения', 'Инцидент: қосымшаның дұрыс жұмыс істемеуі', 'counterparty', 'operator_staff', '2026-12-01T00:00:00Z'),
    (5, 'dispute', NULL, 'Dispute', 'Спор', 'Дау', 'parties', 'operator_staff', '2026-12-01T00:00:00Z'),
    (6, 'dispute.data', 5, 'Dispute about data exchanged', 'Спор о переданных данных', 'Берілген деректер туралы дау', 'parties', 'operator_staff', '2026-12-01T00:00:00Z'),
    (7, 'accreditation', NULL, 'Accreditation', 'Аккредитация', 'Аккредиттеу', 'operator', 'operator_staff', '2026-12-01T00:00:00Z'),
    (8, 'billing', NULL, 'Billing', 'Биллинг', 'Биллинг', 'operator', 'operator_staff', '2026-12-01T00:00:00Z'),
    (9, 'security', NULL, 'Security', 'Информационная безопасность', 'Ақпараттық қауіпсіздік', 'operator', 'operator_admin', '2026-12-01T00:00:00Z'),
    -- Customers' complaints about a consent, raised from `/my`: to the consent's API user; not offered to participants.
    (10, 'complaint', NULL, 'Customer''s complaint about a consent', 'Жалоба клиента на согласие', 'Клиенттің келісімге шағымы', 'counterparty', 'operator_staff', '2026-12-01T00:00:00Z');
UPDATE request_categories SET active = 0 WHERE code = 'complaint';

-- Targets in working minutes (a working day is 9 hours by default): critical 30 min / 4 h, high 2 h / 1 day,
-- normal 4 h / 3 days, low 1 day / 5 days; security and incidents answer faster.
INSERT INTO request_sla_targets (category_id, priority, first_response_minutes, resolution_minutes)
SELECT c.id, t.priority,
       CASE WHEN c.code IN ('security', 'incident', 'incident.api', 'incident.application') THEN t.fast_first ELSE t.first END,
       t.resolution
FROM request_categories c
CROSS JOIN (SELECT 'critical' AS priority, 30 AS first, 15 AS fast_first, 240 AS resolution
            UNION ALL SELECT 'high', 120, 60, 540
            UNION ALL SELECT 'normal', 240, 120, 1620
            UNION ALL SELECT 'low', 540, 540, 2700) t;

INSERT INTO request_category_versions (category_id, version, definition, changed_at, changed_by)
SELECT c.id, 1,
       json_object('code', c.code, 'parent_id', c.parent_id, 'name_en', c.name_en, 'name_ru', c.name_ru,
                   'name_kk', c.name_kk, 'executor', c.executor, 'team', c.team, 'active', c.active,
                   'targets', (SELECT json_group_object(s.priority, json_object('first_response_minutes',
                               s.first_response_minutes, 'resolution_minutes', s.resolution_minutes))
                               FROM request_sla_targets s WHERE s.category_id = c.id)),
       c.updated_at, 'system'
FROM request_categories c;

-- A request: raised by a participant's member (page) or system (API), about an optional object (`object_kind`
-- and `object_ref`: an API's id, an application's client id, a consent id, an interaction id of an exchange, or the
-- organisation's accreditation). Executed by an organisation (`assignee_organisation_id`) or by the operator's team
-- (`assignee_team`). SLA clocks: the first response and the resolution are due in working time; while the request
-- waits for its requester the resolution clock is paused (`resolution_due_at` NULL, the working minutes left kept).
CREATE TABLE requests (
    id                            INTEGER PRIMARY KEY,
    category_id                   INTEGER NOT NULL REFERENCES request_categories (id),
    category_version              INTEGER NOT NULL,
    -- The organisation that raised it, or the customer who complained about a consent from `/my`.
    requester_organisation_id     INTEGER REFERENCES organisations (id),
    requester_customer_id         INTEGER REFERENCES customers (id),
    -- The member who raised it on a page, or the application whose certificate raised it over the API.
    requester_user_id             INTEGER REFERENCES users (id),
    requester_client_id           TEXT,
    subject                       TEXT NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    description                   TEXT NOT NULL CHECK (length(description) BETWEEN 1 AND 10000),
    priority                      TEXT NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'critical')),
    object_kind                   TEXT NOT NULL DEFAULT ''
                                  CHECK (object_kind IN ('', 'api', 'application', 'consent', 'interaction', 'accreditation')),
    object_ref                    TEXT NOT NULL DEFAULT '' CHECK (length(object_ref) <= 100),
    status                        TEXT NOT NULL
                                  CHECK (status IN ('new', 'assigned', 'in_progress', 'waiting', 'resolved', 'closed')),
    assignee_organisation_id      INTEGER REFERENCES organisations (id),
    assignee_team                 TEXT CHECK (assignee_team IN ('operator_staff', 'operator_admin')),
    created_at                    TEXT NOT NULL,
    updated_at                    TEXT NOT NULL,
    first_response_due_at         TEXT NOT NULL,
    first_responded_at            TEXT,
    resolution_target_minutes     INTEGER NOT NULL CHECK (resolution_target_minutes > 0),
    resolution_due_at             TEXT,
    resolution_remaining_minutes  INTEGER,
    resolution_warn_at            TEXT,
    warned_at                     TEXT,
    escalated_at                  TEXT,
    resolved_at                   TEXT,
    closed_at                     TEXT,
    CHECK ((assignee_organisation_id IS NULL) = (assignee_team IS NOT NULL)),
    CHECK ((requester_organisation_id IS NULL) <> (requester_customer_id IS NULL)),
    CHECK (status = 'waiting' OR status IN ('resolved', 'closed') OR resolution_due_at IS NOT NULL)
) STRICT;
CREATE INDEX requests_due ON requests (status, resolution_due_at);
CREATE INDEX requests_first_response ON requests (first_responded_at, first_response_due_at);
CREATE INDEX requests_created ON requests (created_at);

-- The organisations a request concerns: who raised it, who executes it, and the other party of its object. Each of
-- them sees the request; nobody else among the participants does.
CREATE TABLE request_parties (
    request_id       INTEGER NOT NULL REFERENCES requests (id),
    organisation_id  INTEGER NOT NULL REFERENCES organisations (id),
    role             TEXT NOT NULL CHECK (role IN ('requester', 'executor', 'party')),
    PRIMARY KEY (request_id, organisation_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX request_parties_organisation ON request_parties (organisation_id, request_id);

-- The request's history: every change, public comment and internal note (internal notes: the operator only).
CREATE TABLE request_events (
    id                     INTEGER PRIMARY KEY,
    request_id             INTEGER NOT NULL REFERENCES requests (id),
    at                     TEXT NOT NULL,
    actor                  TEXT NOT NULL,
    -- The organisation the actor acted for; NULL for the operator and the platform itself.
    actor_organisation_id  INTEGER REFERENCES organisations (id),
    kind                   TEXT NOT NULL CHECK (kind IN ('created', 'assigned', 'reassigned', 'status', 'comment',
                                                          'note', 'reopened', 'warning', 'breach', 'escalated')),
    status                 TEXT NOT NULL,
    body                   TEXT NOT NULL DEFAULT '' CHECK (length(body) <= 10000),
    internal               INTEGER NOT NULL DEFAULT 0 CHECK (internal IN (0, 1))
) STRICT;
CREATE INDEX request_events_request ON request_events (request_id, id);

-- Files sent with a request, trusted by their bytes only (PDF, PNG, JPEG).
CREATE TABLE request_attachments (
    id            INTEGER PRIMARY KEY,
    request_id    INTEGER NOT NULL REFERENCES requests (id),
    filename      TEXT NOT NULL,
    content_type  TEXT NOT NULL CHECK (content_type IN ('application/pdf', 'image/png', 'image/jpeg')),
    size          INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    content       BLOB NOT NULL,
    created_at    TEXT NOT NULL
) STRICT;
CREATE INDEX request_attachments_request ON request_attachments (request_id);

-- SLA breaches: a clock's deadline passed before its event (the first response, the resolution). One per request and
-- clock; the reports count them by `breached_at`.
CREATE TABLE request_sla_breaches (
    request_id   INTEGER NOT NULL REFERENCES requests (id),
    clock        TEXT NOT NULL CHECK (clock IN ('first_response', 'resolution')),
    due_at       TEXT NOT NULL,
    breached_at  TEXT NOT NULL,
    PRIMARY KEY (request_id, clock)
) STRICT, WITHOUT ROWID;
CREATE INDEX request_sla_breaches_at ON request_sla_breaches (breached_at);

-- The personal account's inbox: what the platform tells an organisation — its requests' changes, its APIs delisted,
-- relisted or over their SLA, accreditation decisions (`kind`: the webhook event's name or `accreditation.*`) —
-- with identifiers only (`data`, JSON). Read per person: everything up to `last_read_id` is read.
CREATE TABLE notices (
    id               INTEGER PRIMARY KEY,
    organisation_id  INTEGER NOT NULL REFERENCES organisations (id),
    kind             TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    data             TEXT NOT NULL DEFAULT '{}',
    created_at       TEXT NOT NULL
) STRICT;
CREATE INDEX notices_organisation ON notices (organisation_id, id);

CREATE TABLE notice_reads (
    user_id       INTEGER PRIMARY KEY REFERENCES users (id),
    last_read_id  INTEGER NOT NULL
) STRICT;
-- migration 22: billing: the regulator's caps per service, providers' tariffs per API and service, the operator's
-- platform fee, and billable units per day kept by the meter's writer (`billing::units::observe`, same transaction as
-- the raw exchanges). Caps, tariffs and fees take effect at the start of an operator's local day, never today or
-- earlier, so the day an exchange falls on names the tariff and cap in force and a day's price never changes after
-- the fact. Rows are never changed or deleted: the row in force for a day is the latest `effective_from` on or before
-- it, the latest id among equals (a later decision for the same day supersedes an earlier one).
-- The transaction lines in a bank's answer (a transactions call is billed per page of up to 100 lines).
ALTER TABLE exchanges ADD COLUMN transaction_lines INTEGER NOT NULL DEFAULT 0;
CREATE TABLE billing_caps (
    id              INTEGER PRIMARY KEY,
    -- `provider`: the most a provider may charge per unit; `platform`: the most the operator's fee may be.
    payee           TEXT NOT NULL CHECK (payee IN ('provider', 'platform')),
    service         TEXT NOT NULL CHECK (service IN ('accounts', 'balances', 'transactions_page')),
    -- The operator's local day it takes effect, YYYY-MM-DD.
    effective_from  TEXT NOT NULL CHECK (length(effective_from) = 10),
    max_tiyn        INTEGER NOT NULL CHECK (max_tiyn >= 0),
    set_by          TEXT NOT NULL,
    set_at          TEXT NOT NULL
) STRICT;
CREATE INDEX billing_caps_in_force ON billing_caps (payee, service, effective_from, id);
CREATE TABLE billing_tariffs (
    id              INTEGER PRIMARY KEY,
    -- NULL: the operator's platform fee (charged to the API user on every billable unit).
    api_id          INTEGER REFERENCES apis (id),
    service         TEXT NOT NULL CHECK (service IN ('accounts', 'balances', 'transactions_page')),
    effective_from  TEXT NOT NULL CHECK (length(effective_from) = 10),
    price_tiyn      INTEGER NOT NULL CHECK (price_tiyn >= 0),
    -- Units free of the provider's charge per API user and month (never for the platform's fee).
    free_units      INTEGER NOT NULL CHECK (free_units >= 0 AND (api_id IS NOT NULL OR free_units = 0)),
    -- Set when the row is the platform's clamp of a tariff under a lowered cap.
    clamped_by_cap  INTEGER REFERENCES billing_caps (id),
    set_by          TEXT NOT NULL,
    set_at          TEXT NOT NULL
) STRICT;
CREATE INDEX billing_tariffs_in_force ON billing_tariffs (api_id, service, effective_from, id);
-- Successful production exchanges with a bank, counted in billable units per operator's local day, API user,
-- provider, API and service. (Sandbox traffic, refusals and failures are never counted.)
CREATE TABLE billing_units_daily (
    day                       TEXT NOT NULL CHECK (length(day) = 10),
    user_organisation_id      INTEGER NOT NULL,
    provider_organisation_id  INTEGER NOT NULL,
    api_id                    INTEGER NOT NULL,
    service                   TEXT NOT NULL CHECK (service IN ('accounts', 'balances', 'transactions_page')),
    exchanges                 INTEGER NOT NULL,
    units                     INTEGER NOT NULL,
    PRIMARY KEY (day, user_organisation_id, provider_organisation_id, api_id, service)
) STRICT, WITHOUT ROWID;
CREATE INDEX billing_units_provider ON billing_units_daily (provider_organisation_id, day);
-- Month close: numbered statements that never change once issued (only their settlement status moves on).
CREATE TABLE billing_closes (
    month      TEXT PRIMARY KEY CHECK (length(month) = 7),
    closed_at  TEXT NOT NULL,
    closed_by  TEXT NOT NULL
) STRICT;
CREATE TABLE billing_statements (
    id               INTEGER PRIMARY KEY,
    -- `KOPIR-YYYYMM-NNNNNN`, numbered within the month.
    number           TEXT NOT NULL UNIQUE,
    month            TEXT NOT NULL REFERENCES billing_closes (month),
    -- `user`: what an API user owes; `provider`: what a provider earns; `operator`: every participant's net position.
    kind             TEXT NOT NULL CHECK (kind IN ('user', 'provider', 'operator')),
    organisation_id  INTEGER REFERENCES organisations (id),
    total_tiyn       INTEGER NOT NULL,
    -- The statement as issued (JSON, stable field names), and its SHA-256 (hex).
    document         TEXT NOT NULL,
    sha256           TEXT NOT NULL,
    issued_at        TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'issued' CHECK (status IN ('issued', 'invoiced', 'paid', 'overdue')),
    status_changed_at TEXT,
    CHECK ((kind = 'operator') = (organisation_id IS NULL))
) STRICT;
CREATE UNIQUE INDEX billing_statements_one ON billing_statements (month, kind, ifnull(organisation_id, 0));
CREATE TRIGGER billing_statements_immutable BEFORE UPDATE ON billing_statements
WHEN OLD.number IS NOT NEW.number OR OLD.month IS NOT NEW.month OR OLD.kind IS NOT NEW.kind
  OR OLD.organisation_id IS NOT NEW.organisation_id OR OLD.total_tiyn IS NOT NEW.total_tiyn
  OR OLD.document IS NOT NEW.document OR OLD.sha256 IS NOT NEW.sha256 OR OLD.issued_at IS NOT NEW.issued_at
BEGIN SELECT RAISE(ABORT, 'an issued statement never changes'); END;
CREATE TRIGGER billing_statements_kept BEFORE DELETE ON billing_statements
BEGIN SELECT RAISE(ABORT, 'an issued statement is never deleted'); END;
-- migration 23: the operator's daily figures per bank API; the consents' gauges per bank without reading the registry
-- The operator's daily rollup per bank API (`reports::usage`): usage_platform_daily summed over endpoint, status
-- class and error code, with the 4xx and 5xx counts kept as columns — a few dozen rows a day instead of a few
-- hundred, for platform-wide figures per day, per bank or per API and SLA breaches per day over long intervals. Kept
-- by the meter's writer with the others (`reports::rollup::add`, same transaction), back-filled here from
-- usage_platform_daily, pruned with the daily rows.
CREATE TABLE usage_api_daily (
    -- The operator's local day, YYYY-MM-DD; provider and API 0 for requests refused before any bank was reached.
    day                       TEXT NOT NULL CHECK (length(day) = 10),
    environment               TEXT NOT NULL CHECK (environment IN ('production', 'sandbox')),
    provider_organisation_id  INTEGER NOT NULL,
    api_id                    INTEGER NOT NULL,
    requests                  INTEGER NOT NULL,
    bytes                     INTEGER NOT NULL,
    -- Requests answered 4xx and 5xx.
    client_errors             INTEGER NOT NULL,
    server_errors             INTEGER NOT NULL,
    latency_sum               INTEGER NOT NULL,
    latency_max               INTEGER NOT NULL,
    b00 INTEGER NOT NULL,
    b01 INTEGER NOT NULL,
    b02 INTEGER NOT NULL,
    b03 INTEGER NOT NULL,
    b04 INTEGER NOT NULL,
    b05 INTEGER NOT NULL,
    b06 INTEGER NOT NULL,
    b07 INTEGER NOT NULL,
    b08 INTEGER NOT NULL,
    b09 INTEGER NOT NULL,
    b10 INTEGER NOT NULL,
    b11 INTEGER NOT NULL,
    b12 INTEGER NOT NULL,
    b13 INTEGER NOT NULL,
    b14 INTEGER NOT NULL,
    b15 INTEGER NOT NULL,
    b16 INTEGER NOT NULL,
    b17 INTEGER NOT NULL,
    b18 INTEGER NOT NULL,
    b19 INTEGER NOT NULL,
    PRIMARY KEY (day, environment, provider_organisation_id, api_id)
) STRICT, WITHOUT ROWID;
INSERT INTO usage_api_daily (day, environment, provider_organisation_id, api_id, requests, bytes, client_errors,
    server_errors, latency_sum, latency_max, b00, b01, b02, b03, b04, b05, b06, b07, b08, b09, b10, b11, b12, b13, b14, b15, b16, b17, b18, b19)
SELECT day, environment, provider_organisation_id, api_id, sum(requests), sum(bytes),
    sum(CASE WHEN status_class = '4xx' THEN requests ELSE 0 END),
    sum(CASE WHEN status_class = '5xx' THEN requests ELSE 0 END), sum(latency_sum), max(latency_max),
    sum(b00), sum(b01), sum(b02), sum(b03), sum(b04), sum(b05), sum(b06), sum(b07), sum(b08), sum(b09), sum(b10), sum(b11), sum(b12), sum(b13), sum(b14), sum(b15), sum(b16), sum(b17), sum(b18), sum(b19)
FROM usage_platform_daily
GROUP BY 1, 2, 3, 4;
-- The monitoring gauges per bank (`monitoring::figures`), kept by triggers on `consents` and `consent_providers`
-- (every writer, same transaction), back-filled here from the registry: `consent_bank_figures` holds, per bank, the
-- consents naming it by status (a bank withdrawn from a consent counts it `Revoked`) and, as `live_customer`, the
-- customers with an authorised consent naming it (not withdrawn); `consent_bank_customers` each customer's count of
-- such consents per bank. Organisation 0 stands for the whole platform in both: customers with any authorised
-- consent, of either environment. Rows that fall to zero stay (so a gauge reads 0, never a stale value).
CREATE TABLE consent_bank_figures (
    organisation_id  INTEGER NOT NULL,
    -- A consent status, or 'live_customer'.
    figure           TEXT NOT NULL,
    count            INTEGER NOT NULL,
    PRIMARY KEY (organisation_id, figure)
) STRICT, WITHOUT ROWID;
CREATE TABLE consent_bank_customers (
    organisation_id  INTEGER NOT NULL,
    customer_id      INTEGER NOT NULL,
    authorised       INTEGER NOT NULL CHECK (authorised >= 0),
    PRIMARY KEY (organisation_id, customer_id)
) STRICT, WITHOUT ROWID;
INSERT INTO consent_bank_figures (organisation_id, figure, count)
SELECT p.organisation_id, CASE WHEN p.status = 'revoked' THEN 'Revoked' ELSE c.status END, count(*)
FROM consent_providers p JOIN consents c ON c.id = p.consent_id
GROUP BY 1, 2;
INSERT INTO consent_bank_customers (organisation_id, customer_id, authorised)
SELECT p.organisation_id, c.customer_id, count(*)
FROM consents c JOIN consent_providers p ON p.consent_id = c.id AND p.status = 'active'
WHERE c.status = 'Authorised' AND c.customer_id IS NOT NULL
GROUP BY 1, 2;
INSERT INTO consent_bank_customers (organisation_id, customer_id, authorised)
SELECT 0, customer_id, count(*) FROM consents WHERE status = 'Authorised' AND customer_id IS NOT NULL
GROUP BY 2;
INSERT INTO consent_bank_figures (organisation_id, figure, count)
SELECT organisation_id, 'live_customer', count(*) FROM consent_bank_customers WHERE authorised > 0
GROUP BY 1;
-- A bank named (a new consent's, or one bank added back): counted under the consent's status, and its customer made
-- live for the bank if the consent is authorised.
CREATE TRIGGER consent_bank_added AFTER INSERT ON consent_providers
BEGIN
    INSERT INTO consent_bank_figures (organisation_id, figure, count)
    SELECT NEW.organisation_id, CASE WHEN NEW.status = 'revoked' THEN 'Revoked' ELSE c.status END, 1
    FROM consents c WHERE c.id = NEW.consent_id
    ON CONFLICT DO UPDATE SET count = count + 1;
    INSERT INTO consent_bank_customers (organisation_id, customer_id, authorised)
    SELECT NEW.organisation_id, c.customer_id, 1 FROM consents c
    WHERE c.id = NEW.consent_id AND c.status = 'Authorised' AND NEW.status = 'active' AND c.customer_id IS NOT NULL
    ON CONFLICT DO UPDATE SET authorised = authorised + 1;
    INSERT INTO consent_bank_figures (organisation_id, figure, count)
    SELECT l.organisation_id, 'live_customer', 1
    FROM consents c JOIN consent_bank_customers l ON l.organisation_id = NEW.organisation_id AND l.customer_id = c.customer_id
    WHERE c.id = NEW.consent_id AND c.status = 'Authorised' AND NEW.status = 'active' AND l.authorised = 1
    ON CONFLICT DO UPDATE SET count = count + 1;
END;
-- A bank taken out of a consent (the customer unticked it before allowing).
CREATE TRIGGER consent_bank_removed AFTER DELETE ON consent_providers
BEGIN
    UPDATE consent_bank_figures SET count = count - 1
    WHERE organisation_id = OLD.organisation_id
      AND figure = (SELECT CASE WHEN OLD.status = 'revoked' THEN 'Revoked' ELSE c.status END
                    FROM consents c WHERE c.id = OLD.consent_id);
    UPDATE consent_bank_customers SET authorised = authorised - 1
    WHERE OLD.status = 'active' AND organisation_id = OLD.organisation_id
      AND customer_id = (SELECT customer_id FROM consents WHERE id = OLD.consent_id AND status = 'Authorised');
    UPDATE consent_bank_figures SET count = count - 1
    WHERE OLD.status = 'active' AND organisation_id = OLD.organisation_id AND figure = 'live_customer'
      AND (SELECT l.authorised FROM consents c
           JOIN consent_bank_customers l ON l.organisation_id = OLD.organisation_id AND l.customer_id = c.customer_id
           WHERE c.id = OLD.consent_id AND c.status = 'Authorised') = 0;
END;
-- One bank withdrawn from a consent (or, never done today, named again).
CREATE TRIGGER consent_bank_status AFTER UPDATE OF status ON consent_providers WHEN OLD.status <> NEW.status
BEGIN
    UPDATE consent_bank_figures SET count = count - 1
    WHERE organisation_id = OLD.organisation_id
      AND figure = (SELECT CASE WHEN OLD.status = 'revoked' THEN 'Revoked' ELSE c.status END
                    FROM consents c WHERE c.id = OLD.consent_id);
    INSERT INTO consent_bank_figures (organisation_id, figure, count)
    SELECT NEW.organisation_id, CASE WHEN NEW.status = 'revoked' THEN 'Revoked' ELSE c.status END, 1
    FROM consents c WHERE c.id = NEW.consent_id
    ON CONFLICT DO UPDATE SET count = count + 1;
    UPDATE consent_bank_customers SET authorised = authorised - 1
    WHERE OLD.status = 'active' AND organisation_id = OLD.organisation_id
      AND customer_id = (SELECT customer_id FROM consents WHERE id = OLD.consent_id AND status = 'Authorised');
    UPDATE consent_bank_figures SET count = count - 1
    WHERE OLD.status = 'active' AND organisation_id = OLD.organisation_id AND figure = 'live_customer'
      AND (SELECT l.authorised FROM consents c
           JOIN consent_bank_customers l ON l.organisation_id = OLD.organisation_id AND l.customer_id = c.customer_id
           WHERE c.id = OLD.consent_id AND c.status = 'Authorised') = 0;
    INSERT INTO consent_bank_customers (organisation_id, customer_id, authorised)
    SELECT NEW.organisation_id, c.customer_id, 1 FROM consents c
    WHERE c.id = NEW.consent_id AND c.status = 'Authorised' AND NEW.status = 'active' AND c.customer_id IS NOT NULL
    ON CONFLICT DO UPDATE SET authorised = authorised + 1;
    INSERT INTO consent_bank_figures (organisation_id, figure, count)
    SELECT l.organisation_id, 'live_customer', 1
    FROM consents c JOIN consent_bank_customers l ON l.organisation_id = NEW.organisation_id AND l.customer_id = c.customer_id
    WHERE c.id = NEW.consent_id AND c.status = 'Authorised' AND NEW.status = 'active' AND l.authorised = 1
    ON CONFLICT DO UPDATE SET count = count + 1;
END;
-- A consent's status changed: each bank it still names moves from the old status to the new; its customer gains or
-- loses an authorised consent for each of those banks and for the platform (organisation 0).
CREATE TRIGGER consent_bank_consent_status AFTER UPDATE OF status ON consents WHEN OLD.status <> NEW.status
BEGIN
    UPDATE consent_bank_figures SET count = count - 1
    WHERE figure = OLD.status
      AND organisation_id IN (SELECT organisation_id FROM consent_providers WHERE consent_id = NEW.id AND status = 'active');
    INSERT INTO consent_bank_figures (organisation_id, figure, count)
    SELECT organisation_id, NEW.status, 1 FROM consent_providers WHERE consent_id = NEW.id AND status = 'active'
    ON CONFLICT DO UPDATE SET count = count + 1;
    UPDATE consent_bank_customers SET authorised = authorised - 1
    WHERE OLD.status = 'Authorised' AND customer_id = OLD.customer_id
      AND organisation_id IN (SELECT organisation_id FROM consent_providers WHERE consent_id = OLD.id AND status = 'active' UNION ALL SELECT 0);
    UPDATE consent_bank_figures SET count = count - 1
    WHERE OLD.status = 'Authorised' AND figure = 'live_customer'
      AND organisation_id IN (SELECT l.organisation_id FROM consent_bank_customers l
                              WHERE l.customer_id = OLD.customer_id AND l.authorised = 0
                                AND l.organisation_id IN (SELECT organisation_id FROM consent_providers WHERE consent_id = OLD.id AND status = 'active' UNION ALL SELECT 0));
    INSERT INTO consent_bank_customers (organisation_id, customer_id, authorised)
    SELECT b.organisation_id, NEW.customer_id, 1 FROM (SELECT organisation_id FROM consent_providers WHERE consent_id = NEW.id AND status = 'active' UNION ALL SELECT 0) b
    WHERE NEW.status = 'Authorised' AND NEW.customer_id IS NOT NULL
    ON CONFLICT DO UPDATE SET authorised = authorised + 1;
    INSERT INTO consent_bank_figures (organisation_id, figure, count)
    SELECT l.organisation_id, 'live_customer', 1 FROM consent_bank_customers l
    WHERE NEW.status = 'Authorised' AND l.customer_id = NEW.customer_id AND l.authorised = 1
      AND l.organisation_id IN (SELECT organisation_id FROM consent_providers WHERE consent_id = NEW.id AND status = 'active' UNION ALL SELECT 0)
    ON CONFLICT DO UPDATE SET count = count + 1;
END;

-- migration 24: billing disputes and credit notes: a statement line as a request's object, the classifier's billing dispute category, numbered immutable credit notes
-- A request may concern a line of an issued statement (`object_kind` 'statement_line', `object_ref`
-- `KOPIR-YYYYMM-NNNNNN/N` for the provider's charge of line N, `…/N/fee` for its platform fee). The table is rebuilt
-- to widen the kinds' CHECK (the runner turns foreign keys off for this and checks every reference before committing).
CREATE TABLE requests_rebuilt (
    id                            INTEGER PRIMARY KEY,
    category_id                   INTEGER NOT NULL REFERENCES request_categories (id),
    category_version              INTEGER NOT NULL,
    -- The organisation that raised it, or the customer who complained about a consent from `/my`.
    requester_organisation_id     INTEGER REFERENCES organisations (id),
    requester_customer_id         INTEGER REFERENCES customers (id),
    -- The member who raised it on a page, or the application whose certificate raised it over the API.
    requester_user_id             INTEGER REFERENCES users (id),
    requester_client_id           TEXT,
    subject                       TEXT NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    description                   TEXT NOT NULL CHECK (length(description) BETWEEN 1 AND 10000),
    priority                      TEXT NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'critical')),
    object_kind                   TEXT NOT NULL DEFAULT ''
                                  CHECK (object_kind IN ('', 'api', 'application', 'consent', 'interaction', 'accreditation',
                                                        'statement_line')),
    object_ref                    TEXT NOT NULL DEFAULT '' CHECK (length(object_ref) <= 100),
    status                        TEXT NOT NULL
                                  CHECK (status IN ('new', 'assigned', 'in_progress', 'waiting', 'resolved', 'closed')),
    assignee_organisation_id      INTEGER REFERENCES organisations (id),
    assignee_team                 TEXT CHECK (assignee_team IN ('operator_staff', 'operator_admin')),
    created_at                    TEXT NOT NULL,
    updated_at                    TEXT NOT NULL,
    first_response_due_at         TEXT NOT NULL,
    first_responded_at            TEXT,
    resolution_target_minutes     INTEGER NOT NULL CHECK (resolution_target_minutes > 0),
    resolution_due_at             TEXT,
    resolution_remaining_minutes  INTEGER,
    resolution_warn_at            TEXT,
    warned_at                     TEXT,
    escalated_at                  TEXT,
    resolved_at                   TEXT,
    closed_at                     TEXT,
    CHECK ((assignee_organisation_id IS NULL) = (assignee_team IS NOT NULL)),
    CHECK ((requester_organisation_id IS NULL) <> (requester_customer_id IS NULL)),
    CHECK (status = 'waiting' OR status IN ('resolved', 'closed') OR resolution_due_at IS NOT NULL)
) STRICT;
INSERT INTO requests_rebuilt (id, category_id, category_version, requester_organisation_id, requester_customer_id, requester_user_id,
    requester_client_id, subject, description, priority, object_kind, object_ref, status, assignee_organisation_id,
    assignee_team, created_at, updated_at, first_response_due_at, first_responded_at, resolution_target_minutes,
    resolution_due_at, resolution_remaining_minutes, resolution_warn_at, warned_at, escalated_at, resolved_at, closed_at)
SELECT id, category_id, category_version, requester_organisation_id, requester_customer_id, requester_user_id,
    requester_client_id, subject, description, priority, object_kind, object_ref, status, assignee_organisation_id,
    assignee_team, created_at, updated_at, first_response_due_at, first_responded_at, resolution_target_minutes,
    resolution_due_at, resolution_remaining_minutes, resolution_warn_at, warned_at, escalated_at, resolved_at, closed_at
FROM requests;
DROP TABLE requests;
ALTER TABLE requests_rebuilt RENAME TO requests;
CREATE INDEX requests_due ON requests (status, resolution_due_at);
CREATE INDEX requests_first_response ON requests (first_responded_at, first_response_due_at);
CREATE INDEX requests_created ON requests (created_at);
CREATE INDEX requests_object ON requests (object_kind, object_ref);

-- The classifier's billing dispute: a statement line's charge goes to the provider it names (the counterparty), with
-- the operator's staff as arbiter; a platform fee's to the operator's staff. Version 1, kept like the seed's.
INSERT INTO request_categories (code, parent_id, name_en, name_ru, name_kk, executor, team, updated_at)
SELECT 'billing.dispute', id, 'Billing dispute: a statement line', 'Спор по биллингу: строка выписки',
       'Биллинг бойынша дау: шот-үзінді жолы', 'counterparty', 'operator_staff', '2026-12-04T00:00:00Z'
FROM request_categories WHERE code = 'billing';
INSERT INTO request_sla_targets (category_id, priority, first_response_minutes, resolution_minutes)
SELECT c.id, t.priority, t.first, t.resolution
FROM request_categories c
CROSS JOIN (SELECT 'critical' AS priority, 30 AS first, 240 AS resolution
            UNION ALL SELECT 'high', 120, 540
            UNION ALL SELECT 'normal', 240, 1620
            UNION ALL SELECT 'low', 540, 2700) t
WHERE c.code = 'billing.dispute';
INSERT INTO request_category_versions (category_id, version, definition, changed_at, changed_by)
SELECT c.id, 1,
       json_object('code', c.code, 'parent_id', c.parent_id, 'name_en', c.name_en, 'name_ru', c.name_ru,
                   'name_kk', c.name_kk, 'executor', c.executor, 'team', c.team, 'active', c.active,
                   'targets', (SELECT json_group_object(s.priority, json_object('first_response_minutes',
                               s.first_response_minutes, 'resolution_minutes', s.resolution_minutes))
                               FROM request_sla_targets s WHERE s.category_id = c.id)),
       c.updated_at, 'system'
FROM request_categories c WHERE c.code = 'billing.dispute';

-- Credit notes: corrections of an issued statement's line, never edits of it. Each names the line it credits (the
-- statement, the line's place in it, the part: the provider's `charge` or the platform's `fee`) and, to keep one
-- remainder across the API user's and the provider's statements of the same charge, the charge's key (month, API
-- user, provider, API, service). Numbered `KOPIR-CN-YYYYMM-NNNNNN` within the month it corrects; the document as
-- issued (JSON) and its SHA-256; optionally the dispute request it settles. Never changed, never deleted.
CREATE TABLE billing_credit_notes (
    id                        INTEGER PRIMARY KEY,
    number                    TEXT NOT NULL UNIQUE,
    month                     TEXT NOT NULL REFERENCES billing_closes (month),
    statement_number          TEXT NOT NULL REFERENCES billing_statements (number),
    line                      INTEGER NOT NULL CHECK (line >= 1),
    part                      TEXT NOT NULL CHECK (part IN ('charge', 'fee')),
    user_organisation_id      INTEGER NOT NULL REFERENCES organisations (id),
    provider_organisation_id  INTEGER NOT NULL REFERENCES organisations (id),
    api_id                    INTEGER NOT NULL,
    service                   TEXT NOT NULL CHECK (service IN ('accounts', 'balances', 'transactions_page')),
    amount_tiyn               INTEGER NOT NULL CHECK (amount_tiyn > 0),
    reason                    TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    request_id                INTEGER REFERENCES requests (id),
    document                  TEXT NOT NULL,
    sha256                    TEXT NOT NULL,
    issued_at                 TEXT NOT NULL,
    issued_by                 TEXT NOT NULL
) STRICT;
CREATE INDEX billing_credit_notes_charge
    ON billing_credit_notes (month, user_organisation_id, provider_organisation_id, api_id, service, part);
CREATE INDEX billing_credit_notes_user ON billing_credit_notes (user_organisation_id, month);
CREATE INDEX billing_credit_notes_provider ON billing_credit_notes (provider_organisation_id, month);
CREATE TRIGGER billing_credit_notes_immutable BEFORE UPDATE ON billing_credit_notes
BEGIN SELECT RAISE(ABORT, 'an issued credit note never changes'); END;
CREATE TRIGGER billing_credit_notes_kept BEFORE DELETE ON billing_credit_notes
BEGIN SELECT RAISE(ABORT, 'an issued credit note is never deleted'); END;
-- migration 25: the header's count of requests awaiting an operator team (assigned to it, not yet taken up) reads one
-- range of an index rather than every open request.
CREATE INDEX requests_awaiting_team ON requests (assignee_team, status);
-- migration 26: billing: the overdue warning (`billing::overdue`): an API user's statement overdue beyond
-- `billing.suspend_after_days` is warned about once — a webhook, an inbox notice and the journal — and this row
-- records it, so the schedule never repeats it. A warning only: nothing is suspended.
CREATE TABLE billing_overdue_warnings (
    statement_id  INTEGER PRIMARY KEY REFERENCES billing_statements (id),
    warned_at     TEXT NOT NULL,
    days_overdue  INTEGER NOT NULL CHECK (days_overdue >= 0)
) STRICT;
