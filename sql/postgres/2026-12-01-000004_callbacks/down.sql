DROP TABLE registrations;
DROP INDEX reservations_number_day;
DROP INDEX reservations_card_day;
ALTER TABLE cards DROP COLUMN callback_countries;
ALTER TABLE cdrs DROP COLUMN legs;
