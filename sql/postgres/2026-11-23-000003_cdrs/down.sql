DROP TABLE cdrs; DROP FUNCTION cdrs_append_only();
