-- The operator's rate deck: prices per number prefix, above the tariffs per kind of number.
-- Each import is a row here; the deck in force is the newest (an import of no rates, the
-- deck removed, is a row too). Nodes compare the newest id with the one they price with.
CREATE TABLE rate_decks (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    loaded_ms   BIGINT  NOT NULL,
    rates       BIGINT  NOT NULL,
    -- Who loaded it: "cli", or the API key's name.
    source      TEXT    NOT NULL
);

-- The rates of a deck; an import replaces the older decks' rows in the same transaction.
CREATE TABLE rate_deck (
    deck_id        BIGINT  NOT NULL REFERENCES rate_decks (id),
    account        TEXT    NOT NULL CHECK (account IN ('mileage', 'guild')),
    -- E.164 digits without '+'.
    prefix         TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    per_minute     BIGINT  NOT NULL CHECK (per_minute >= 0),
    first_secs     BIGINT  NOT NULL CHECK (first_secs >= 1),
    increment_secs BIGINT  NOT NULL CHECK (increment_secs >= 1),
    connection     BIGINT  NOT NULL CHECK (connection >= 0),
    minimum        BIGINT  NOT NULL CHECK (minimum >= 0),
    PRIMARY KEY (deck_id, account, prefix)
);
