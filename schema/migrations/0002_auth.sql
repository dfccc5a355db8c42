-- Accounts and authentication: users, refresh-token families, passkeys
-- (WebAuthn credentials), single-use WebAuthn challenges, failed-login
-- throttling and behavioural telemetry. edge-api/AUTH.md describes the rules
-- these tables serve; every statement against them is in
-- edge-api/src/repositories/.
--
-- Row-level security as for memories: a user's requests (app.user_id) see
-- their own rows; account management that spans users (login, refresh,
-- challenge use) runs with app.system = 'on'.

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Stored lower-cased: one address, one account.
    email         text NOT NULL CHECK (email = lower(email)),
    username      text NOT NULL CHECK (username ~ '^[a-z0-9_.-]{3,32}$'),
    -- PHC string: $argon2id$v=19$m=…,t=…,p=…$salt$hash
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_username_key UNIQUE (username)
);

-- Opaque refresh tokens, stored as sha256 (hex). Every login starts a
-- family; each use spends one token and adds its successor to the family.
-- Presenting a spent token revokes the whole family (theft detection).
CREATE TABLE refresh_tokens (
    token_hash  text PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    family_id   uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- How the session was authenticated, carried into refreshed tokens.
    amr         text[] NOT NULL,
    mfa_pending boolean NOT NULL,
    hwk_at      timestamptz,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

CREATE TABLE webauthn_credentials (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id   bytea NOT NULL CHECK (octet_length(credential_id) BETWEEN 1 AND 1023),
    -- The COSE_Key exactly as the authenticator sent it.
    public_key      bytea NOT NULL,
    alg             integer NOT NULL,
    sign_count      bigint NOT NULL CHECK (sign_count BETWEEN 0 AND 4294967295),
    aaguid          uuid NOT NULL,
    backup_eligible boolean NOT NULL,
    backup_state    boolean NOT NULL,
    transports      text[] NOT NULL DEFAULT '{}',
    name            text NOT NULL,
    created_at      timestamptz NOT NULL,
    last_used_at    timestamptz,
    CONSTRAINT webauthn_credentials_credential_id_key UNIQUE (credential_id)
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials (user_id, created_at);

-- Challenges live 5 minutes and are consumed with DELETE … RETURNING, so
-- each is used at most once even under concurrent completes. user_id is
-- NULL for discoverable-credential sign-in.
CREATE TABLE webauthn_challenges (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    challenge  bytea NOT NULL CHECK (octet_length(challenge) = 32),
    ceremony   text NOT NULL CHECK (ceremony IN ('register', 'authenticate')),
    user_id    uuid REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX webauthn_challenges_expires ON webauthn_challenges (expires_at);

-- Failed password logins per account name ('account:<name>') and per client
-- ('client:<address>'), with the lock they earned. Postgres, not KV: the
-- counter must be exact under concurrent attempts.
CREATE TABLE login_throttle (
    key             text PRIMARY KEY,
    failures        integer NOT NULL,
    last_failure_at timestamptz NOT NULL,
    locked_until    timestamptz
);

-- Behavioural signals, one row per event. The command text itself is never
-- stored, only its length and token count. No foreign key: tokens minted
-- for tests name users without an account, and telemetry is advisory.
CREATE TABLE auth_telemetry (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        uuid NOT NULL,
    session_id     text NOT NULL,
    at             timestamptz NOT NULL,
    typing_speed   double precision NOT NULL,
    error          boolean NOT NULL,
    command_length integer NOT NULL,
    command_tokens integer NOT NULL,
    received_at    timestamptz NOT NULL
);
CREATE INDEX auth_telemetry_user_at ON auth_telemetry (user_id, at DESC);

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
ALTER TABLE webauthn_credentials ENABLE ROW LEVEL SECURITY;
ALTER TABLE webauthn_credentials FORCE ROW LEVEL SECURITY;
ALTER TABLE webauthn_challenges ENABLE ROW LEVEL SECURITY;
ALTER TABLE webauthn_challenges FORCE ROW LEVEL SECURITY;
ALTER TABLE login_throttle ENABLE ROW LEVEL SECURITY;
ALTER TABLE login_throttle FORCE ROW LEVEL SECURITY;
ALTER TABLE auth_telemetry ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth_telemetry FORCE ROW LEVEL SECURITY;

CREATE POLICY users_owner ON users
    USING (id = NULLIF(current_setting('app.user_id', true), '')::uuid)
    WITH CHECK (id = NULLIF(current_setting('app.user_id', true), '')::uuid);
CREATE POLICY users_system ON users
    USING (current_setting('app.system', true) = 'on')
    WITH CHECK (current_setting('app.system', true) = 'on');

CREATE POLICY refresh_tokens_system ON refresh_tokens
    USING (current_setting('app.system', true) = 'on')
    WITH CHECK (current_setting('app.system', true) = 'on');

CREATE POLICY webauthn_credentials_owner ON webauthn_credentials
    USING (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid);
CREATE POLICY webauthn_credentials_system ON webauthn_credentials
    USING (current_setting('app.system', true) = 'on')
    WITH CHECK (current_setting('app.system', true) = 'on');

CREATE POLICY webauthn_challenges_system ON webauthn_challenges
    USING (current_setting('app.system', true) = 'on')
    WITH CHECK (current_setting('app.system', true) = 'on');

CREATE POLICY login_throttle_system ON login_throttle
    USING (current_setting('app.system', true) = 'on')
    WITH CHECK (current_setting('app.system', true) = 'on');

CREATE POLICY auth_telemetry_owner ON auth_telemetry
    USING (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid);
CREATE POLICY auth_telemetry_system ON auth_telemetry
    USING (current_setting('app.system', true) = 'on')
    WITH CHECK (current_setting('app.system', true) = 'on');

GRANT SELECT, INSERT, UPDATE, DELETE ON users, refresh_tokens, webauthn_credentials,
    webauthn_challenges, login_throttle, auth_telemetry TO memshadow_app;
