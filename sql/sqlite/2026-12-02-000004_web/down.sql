DROP INDEX cdrs_card;
DROP INDEX cards_issuer;
DROP TABLE phonebook;
DROP TABLE card_texts;
DROP INDEX cards_slug;
ALTER TABLE cards DROP COLUMN deleted_ms;
ALTER TABLE cards DROP COLUMN updated_ms;
ALTER TABLE cards DROP COLUMN photo;
ALTER TABLE cards DROP COLUMN slug;
