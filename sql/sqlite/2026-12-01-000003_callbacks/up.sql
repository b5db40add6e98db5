-- Calls the switch places (call-backs, web dial): a record carries each dialled leg, and a
-- card says which countries its visitors may be called back in.

-- JSON array of the legs of a call the switch placed (role, number, kind, answer, cost).
ALTER TABLE cdrs ADD COLUMN legs TEXT;

-- ISO 3166 country codes (comma-separated) whose numbers the card's visitors may be called
-- back on; empty: domestic numbers only.
ALTER TABLE cards ADD COLUMN callback_countries TEXT NOT NULL DEFAULT '';

-- The call-back limits count today's requests per card and per visitor number.
CREATE INDEX reservations_card_day ON reservations (card_id, created_ms);
CREATE INDEX reservations_number_day ON reservations (number, created_ms);

-- Where members' softphones are (SIP REGISTER, RFC 3261 section 10): one row per contact,
-- shared by every node. The switch sends a call to the address the REGISTER came from
-- (`source`), never to an address the Contact merely names.
CREATE TABLE registrations (
    id          INTEGER PRIMARY KEY,
    sip_user    TEXT    NOT NULL,
    contact     TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    node        TEXT    NOT NULL,
    call_id     TEXT    NOT NULL,
    cseq        BIGINT  NOT NULL,
    expires_ms  BIGINT  NOT NULL,
    updated_ms  BIGINT  NOT NULL,
    UNIQUE (sip_user, contact)
);
CREATE INDEX registrations_user ON registrations (sip_user, expires_ms);
