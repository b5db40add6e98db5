DROP FUNCTION freecall_settle(bigint, bigint, bigint, bigint, text, text, bigint);
DROP FUNCTION freecall_reserve(bigint, bigint, text, text, text, text, bigint, bigint, bigint, bigint, bigint, bigint, bigint);
