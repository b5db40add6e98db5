ALTER TABLE nodes DROP COLUMN taken_calls;
ALTER TABLE nodes DROP COLUMN taker_until_ms;
ALTER TABLE nodes DROP COLUMN taker;
ALTER TABLE nodes DROP COLUMN fenced_ms;
ALTER TABLE nodes DROP COLUMN epoch;
