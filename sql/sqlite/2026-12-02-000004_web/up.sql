-- The web side: a card's public link, photo and language versions, and members' phone books.

-- The unguessable short link of the card's public page (/c/{slug}).
ALTER TABLE cards ADD COLUMN slug TEXT;
UPDATE cards SET slug = lower(hex(randomblob(8))) WHERE slug IS NULL;
CREATE UNIQUE INDEX cards_slug ON cards (slug);
-- An uploaded photo: the file name under the data directory's photos/ (content-addressed).
ALTER TABLE cards ADD COLUMN photo TEXT NOT NULL DEFAULT '';
-- Last change (ms): the public page's validator.
ALTER TABLE cards ADD COLUMN updated_ms BIGINT NOT NULL DEFAULT 0;
-- Withdrawn by its issuer: the page is gone, calls are refused; the row stays for the
-- ledger and the call records that name it.
ALTER TABLE cards ADD COLUMN deleted_ms BIGINT;

-- Further language versions of a card (the card's own row is its main language): one
-- public link and one quota, text per language.
CREATE TABLE card_texts (
    id        INTEGER PRIMARY KEY,
    card_id   BIGINT NOT NULL REFERENCES cards (id),
    language  TEXT   NOT NULL,
    name      TEXT   NOT NULL,
    title     TEXT   NOT NULL DEFAULT '',
    company   TEXT   NOT NULL DEFAULT '',
    text      TEXT   NOT NULL DEFAULT '',
    UNIQUE (card_id, language)
);

-- A member's phone book (C13).
CREATE TABLE phonebook (
    id          INTEGER PRIMARY KEY,
    member_id   BIGINT NOT NULL REFERENCES members (id),
    name        TEXT   NOT NULL,
    number      TEXT   NOT NULL,
    created_ms  BIGINT NOT NULL
);
CREATE INDEX phonebook_member ON phonebook (member_id, name);
CREATE INDEX cards_issuer ON cards (issuer_id);
CREATE INDEX cdrs_card ON cdrs (card_id, id);
