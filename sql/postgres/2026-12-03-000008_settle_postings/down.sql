DROP FUNCTION freecall_apply_settlement(bigint, bigint, bigint, bigint, boolean, bigint, bigint, bigint, bigint, bigint, text, text, bigint);

-- The function as it was before (sql/postgres/2026-11-23-000002_call_functions).
CREATE FUNCTION freecall_settle(
    p_id bigint, p_talk bigint, p_answered bigint, p_ended bigint, p_cause text,
    p_call text, p_now bigint
) RETURNS TABLE (outcome text, billed bigint, cost bigint, released bigint)
LANGUAGE plpgsql AS $$
DECLARE
    r reservations%ROWTYPE;
    t bigint;
    b bigint;
    c bigint;
    bal bigint;
    res bigint;
BEGIN
    SELECT * INTO r FROM reservations WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'missing'::text, 0::bigint, 0::bigint, 0::bigint;
        RETURN;
    END IF;
    IF r.state <> 'open' THEN
        RETURN QUERY SELECT 'already'::text, 0::bigint, 0::bigint, 0::bigint;
        RETURN;
    END IF;
    t := LEAST(p_talk, r.max_secs);
    b := CASE WHEN t <= 0 THEN 0
              WHEN t <= r.first_secs THEN r.first_secs
              ELSE r.first_secs + ((t - r.first_secs + r.increment_secs - 1) / r.increment_secs) * r.increment_secs
         END;
    c := CASE WHEN b = 0 THEN 0
              ELSE LEAST(r.amount, r.connection + GREATEST(r.minimum, (r.per_minute * b + 59) / 60))
         END;
    UPDATE reservations
       SET state = 'settled', answered_ms = p_answered, ended_ms = p_ended, cause = p_cause,
           billed_secs = b, cost = c
     WHERE id = p_id;
    UPDATE accounts SET balance = balance - c, reserved = reserved - r.amount
     WHERE id = r.account_id
    RETURNING balance, reserved INTO bal, res;
    IF r.card_id IS NOT NULL THEN
        UPDATE cards SET quota_reserved = quota_reserved - 1,
                         quota_used = quota_used + (CASE WHEN p_answered IS NULL THEN 0 ELSE 1 END)
         WHERE id = r.card_id;
    END IF;
    IF p_answered IS NOT NULL THEN
        INSERT INTO ledger (account_id, card_id, kind, amount, calls, balance_after, reserved_after, cause, reference, created_ms)
        VALUES (r.account_id, r.card_id, 'debit', c, CASE WHEN r.card_id IS NULL THEN 0 ELSE 1 END,
                bal, res + (r.amount - c), 'call', p_call, p_now);
    END IF;
    INSERT INTO ledger (account_id, card_id, kind, amount, calls, balance_after, reserved_after, cause, reference, created_ms)
    VALUES (r.account_id, r.card_id, 'release', r.amount - c,
            CASE WHEN r.card_id IS NOT NULL AND p_answered IS NULL THEN 1 ELSE 0 END,
            bal, res, 'call', p_call, p_now);
    RETURN QUERY SELECT 'done'::text, b, c, r.amount - c;
END $$;
