DROP TABLE recordings;
ALTER TABLE bookings DROP COLUMN record;
ALTER TABLE cards DROP COLUMN record_calls;
DROP TABLE issuer_whispers;
DROP TABLE card_greetings;
