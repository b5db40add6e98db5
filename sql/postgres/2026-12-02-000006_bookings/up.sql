-- Calls booked for a set time (C11): a call-back (or a member's dial) that waits.
CREATE TABLE bookings (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- What the booker holds: R-YYYYMMDD-NNNN, unique.
    serial        TEXT    NOT NULL UNIQUE,
    -- The booking's own unguessable handle (REST: /v1/bookings/{token}).
    token         TEXT    NOT NULL UNIQUE,
    card_id       BIGINT  REFERENCES cards (id),
    member_id     BIGINT  REFERENCES members (id),
    -- As the booker typed it (with an extension after ';').
    number        TEXT    NOT NULL,
    due_ms        BIGINT  NOT NULL,
    time_zone     TEXT    NOT NULL,
    -- scheduled, claimed, dialling, done, failed, refused, missed, cancelled, interrupted
    state         TEXT    NOT NULL DEFAULT 'scheduled',
    attempts      BIGINT  NOT NULL DEFAULT 0,
    max_attempts  BIGINT  NOT NULL,
    retry_secs    BIGINT  NOT NULL,
    claimed_by    TEXT,
    lease_ms      BIGINT,
    call_id       TEXT,
    cause         TEXT,
    created_ms    BIGINT  NOT NULL,
    updated_ms    BIGINT  NOT NULL,
    CHECK ((card_id IS NULL) <> (member_id IS NULL))
);
CREATE INDEX bookings_due ON bookings (state, due_ms);
CREATE INDEX bookings_card ON bookings (card_id, state);
CREATE INDEX bookings_member ON bookings (member_id, state);
CREATE INDEX bookings_number ON bookings (number, state);

-- Each time a booking was dialled, with how it ended.
CREATE TABLE booking_attempts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    booking_id  BIGINT NOT NULL REFERENCES bookings (id),
    attempt     BIGINT NOT NULL,
    call_id     TEXT   NOT NULL,
    cause       TEXT,
    started_ms  BIGINT NOT NULL,
    ended_ms    BIGINT,
    UNIQUE (booking_id, attempt)
);
