DROP TABLE rate_deck;
DROP TABLE rate_decks;
