-- freecall money schema (SQLite). Amounts are integers in the account's unit; times are
-- unix milliseconds. The PostgreSQL twin lives in sql/postgres/.

CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('mileage', 'guild')),
    balance     BIGINT  NOT NULL DEFAULT 0 CHECK (balance >= 0),
    -- Held by calls in progress; never more than the balance (no overdraft, even if a
    -- statement elsewhere were wrong).
    reserved    BIGINT  NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= balance),
    created_ms  BIGINT  NOT NULL
);

CREATE TABLE members (
    id             INTEGER PRIMARY KEY,
    login          TEXT    NOT NULL UNIQUE,
    password_hash  TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    address        TEXT    NOT NULL DEFAULT '',
    job            TEXT    NOT NULL DEFAULT '',
    phone          TEXT    NOT NULL DEFAULT '',
    email          TEXT    NOT NULL DEFAULT '',
    sip_user       TEXT    NOT NULL UNIQUE,
    sip_ha1        TEXT    NOT NULL,
    account_id     BIGINT  NOT NULL REFERENCES accounts (id),
    created_ms     BIGINT  NOT NULL
);

CREATE TABLE products (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL,
    kind           TEXT    NOT NULL DEFAULT '',
    spec           TEXT    NOT NULL DEFAULT '',
    image_url      TEXT    NOT NULL DEFAULT '',
    features       TEXT    NOT NULL DEFAULT '',
    price          BIGINT  NOT NULL CHECK (price >= 0),
    supplier       TEXT    NOT NULL DEFAULT '',
    mileage_award  BIGINT  NOT NULL CHECK (mileage_award >= 0),
    created_ms     BIGINT  NOT NULL
);

CREATE TABLE sales (
    id           INTEGER PRIMARY KEY,
    member_id    BIGINT  NOT NULL REFERENCES members (id),
    total_price  BIGINT  NOT NULL,
    mileage      BIGINT  NOT NULL,
    created_ms   BIGINT  NOT NULL
);

CREATE TABLE sale_items (
    id          INTEGER PRIMARY KEY,
    sale_id     BIGINT  NOT NULL REFERENCES sales (id),
    product_id  BIGINT  NOT NULL REFERENCES products (id),
    quantity    BIGINT  NOT NULL CHECK (quantity > 0),
    unit_price  BIGINT  NOT NULL,
    mileage     BIGINT  NOT NULL
);

CREATE TABLE issuers (
    id             INTEGER PRIMARY KEY,
    login          TEXT    NOT NULL UNIQUE,
    password_hash  TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    company        TEXT    NOT NULL DEFAULT '',
    account_id     BIGINT  NOT NULL REFERENCES accounts (id),
    created_ms     BIGINT  NOT NULL
);

CREATE TABLE cards (
    id              INTEGER PRIMARY KEY,
    issuer_id       BIGINT  NOT NULL REFERENCES issuers (id),
    language        TEXT    NOT NULL DEFAULT 'ko',
    name            TEXT    NOT NULL,
    title           TEXT    NOT NULL DEFAULT '',
    company         TEXT    NOT NULL DEFAULT '',
    text            TEXT    NOT NULL DEFAULT '',
    image_url       TEXT    NOT NULL DEFAULT '',
    video_url       TEXT    NOT NULL DEFAULT '',
    design          TEXT    NOT NULL DEFAULT '',
    -- JSON array of {"kind": "landline"|"mobile"|"internet", "number": "…"}.
    phones          TEXT    NOT NULL DEFAULT '[]',
    quota_total     BIGINT  NOT NULL CHECK (quota_total >= 0),
    quota_used      BIGINT  NOT NULL DEFAULT 0 CHECK (quota_used >= 0),
    quota_reserved  BIGINT  NOT NULL DEFAULT 0 CHECK (quota_reserved >= 0),
    created_ms      BIGINT  NOT NULL,
    CHECK (quota_used + quota_reserved <= quota_total)
);

-- Immutable: every change of a balance, reservation or quota is one row here.
CREATE TABLE ledger (
    id              INTEGER PRIMARY KEY,
    account_id      BIGINT  NOT NULL REFERENCES accounts (id),
    card_id         BIGINT  REFERENCES cards (id),
    kind            TEXT    NOT NULL CHECK (kind IN ('credit', 'debit', 'reserve', 'release')),
    amount          BIGINT  NOT NULL CHECK (amount >= 0),
    -- Call quota units moved by this entry (card calls and quota grants).
    calls           BIGINT  NOT NULL DEFAULT 0 CHECK (calls >= 0),
    balance_after   BIGINT  NOT NULL,
    reserved_after  BIGINT  NOT NULL,
    cause           TEXT    NOT NULL,
    reference       TEXT,
    created_ms      BIGINT  NOT NULL
);
CREATE INDEX ledger_account ON ledger (account_id, id);
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;

-- One per call that was allowed to go ahead; settled exactly once.
CREATE TABLE reservations (
    id              INTEGER PRIMARY KEY,
    call_id         TEXT    NOT NULL UNIQUE,
    node            TEXT    NOT NULL,
    account_id      BIGINT  NOT NULL REFERENCES accounts (id),
    card_id         BIGINT  REFERENCES cards (id),
    number          TEXT    NOT NULL,
    destination     TEXT    NOT NULL,
    amount          BIGINT  NOT NULL CHECK (amount >= 0),
    max_secs        BIGINT  NOT NULL,
    -- The tariff in force when the call was allowed: settlement uses it even if tariffs
    -- are reloaded meanwhile.
    per_minute      BIGINT  NOT NULL,
    first_secs      BIGINT  NOT NULL,
    increment_secs  BIGINT  NOT NULL,
    minimum         BIGINT  NOT NULL,
    connection      BIGINT  NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'settled')),
    answered_ms     BIGINT,
    ended_ms        BIGINT,
    billed_secs     BIGINT,
    cost            BIGINT,
    cause           TEXT,
    created_ms      BIGINT  NOT NULL
);
CREATE INDEX reservations_open ON reservations (node, state);

CREATE TABLE nodes (
    id            TEXT    PRIMARY KEY,
    heartbeat_ms  BIGINT  NOT NULL
);

CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    key_hash    TEXT    NOT NULL UNIQUE,
    -- Space-separated: admin, credit, read.
    scopes      TEXT    NOT NULL,
    created_ms  BIGINT  NOT NULL
);

-- A request with an Idempotency-Key: its body's hash and the answer first given.
CREATE TABLE idempotency (
    id            INTEGER PRIMARY KEY,
    scope         TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    status        INTEGER NOT NULL,
    response      TEXT    NOT NULL,
    created_ms    BIGINT  NOT NULL,
    UNIQUE (scope, key)
);
