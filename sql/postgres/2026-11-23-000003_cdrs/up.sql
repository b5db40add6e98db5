-- Call records: one per call, written once, in the transaction that settles the call.
CREATE TABLE cdrs (
    id            BIGSERIAL PRIMARY KEY,
    call_id       TEXT    NOT NULL UNIQUE,
    node          TEXT    NOT NULL,
    caller        TEXT    NOT NULL,
    callee        TEXT    NOT NULL,
    account_id    BIGINT,
    card_id       BIGINT,
    destination   TEXT    NOT NULL,
    trunks        TEXT    NOT NULL,
    trunk         TEXT,
    setup_ms      BIGINT  NOT NULL,
    answered_ms   BIGINT,
    ended_ms      BIGINT  NOT NULL,
    billed_secs   BIGINT  NOT NULL,
    cost          BIGINT  NOT NULL,
    code          INTEGER NOT NULL,
    cause         TEXT    NOT NULL,
    ended_by      TEXT    NOT NULL,
    codec_caller  TEXT    NOT NULL,
    codec_callee  TEXT    NOT NULL,
    media         TEXT
);
CREATE INDEX cdrs_callee ON cdrs (callee, id);
CREATE INDEX cdrs_caller ON cdrs (caller, id);
CREATE INDEX cdrs_account ON cdrs (account_id, id);
CREATE INDEX cdrs_ended ON cdrs (ended_ms);
-- Records are history: never rewritten.
CREATE FUNCTION cdrs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'call records are append-only'; END $$;
CREATE TRIGGER cdrs_no_update BEFORE UPDATE ON cdrs
    FOR EACH ROW EXECUTE FUNCTION cdrs_append_only();
