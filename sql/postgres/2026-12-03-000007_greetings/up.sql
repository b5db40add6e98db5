-- A card's greetings (C12): a row for each case in which the visitor hears one when the
-- issuer cannot take the call. No audio: the shipped voice in the card's language.
CREATE TABLE card_greetings (
    card_id     BIGINT  NOT NULL REFERENCES cards (id),
    event       TEXT    NOT NULL CHECK (event IN ('no-answer', 'declined', 'busy')),
    -- 16-bit mono WAV at 8 kHz, converted once at upload.
    audio       BYTEA,
    duration_ms BIGINT  NOT NULL DEFAULT 0,
    updated_ms  BIGINT  NOT NULL,
    PRIMARY KEY (card_id, event)
);

-- An issuer's whisper: heard on answering a call-back, before the question.
CREATE TABLE issuer_whispers (
    issuer_id   BIGINT  PRIMARY KEY REFERENCES issuers (id),
    audio       BYTEA   NOT NULL,
    duration_ms BIGINT  NOT NULL,
    updated_ms  BIGINT  NOT NULL
);

-- Record every call-back of this card (as if each request asked for it).
ALTER TABLE cards ADD COLUMN record_calls BOOLEAN NOT NULL DEFAULT FALSE;
-- The booked call is recorded.
ALTER TABLE bookings ADD COLUMN record BOOLEAN NOT NULL DEFAULT FALSE;

-- Recordings asked for (C12): one per call, the file on the node that recorded it.
CREATE TABLE recordings (
    call_id     TEXT    PRIMARY KEY,
    card_id     BIGINT  REFERENCES cards (id),
    account_id  BIGINT  REFERENCES accounts (id),
    node        TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    format      TEXT    NOT NULL DEFAULT 'audio/wav',
    started_ms  BIGINT  NOT NULL,
    duration_ms BIGINT,
    bytes       BIGINT,
    -- recording, ready, failed
    state       TEXT    NOT NULL DEFAULT 'recording'
);
CREATE INDEX recordings_card ON recordings (card_id, started_ms);
CREATE INDEX recordings_account ON recordings (account_id, started_ms);
CREATE INDEX recordings_started ON recordings (started_ms);
