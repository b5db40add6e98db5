-- Settlement's money rules are written once, in Rust (freecall::billing::Held::settle):
-- the switch reads what each reservation holds, computes the posting, and this function
-- only applies it — flip the reservation open → settled, move the money, count the card's
-- call, append the ledger entries — in one round trip for a whole batch.
--
-- A posting is applied only while the reservation is still open and holds exactly what
-- the posting gives out (cost + released = amount): outcome 'done'; 'already' when it was
-- settled meanwhile; 'missing' for no such reservation; 'mismatch' (nothing written) for
-- a posting that does not add up.
CREATE FUNCTION freecall_apply_settlement(
    p_id bigint, p_billed bigint, p_cost bigint, p_released bigint, p_debit boolean,
    p_debit_calls bigint, p_release_calls bigint, p_quota_used bigint,
    p_answered bigint, p_ended bigint, p_cause text, p_call text, p_now bigint
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r reservations%ROWTYPE;
    bal bigint;
    res bigint;
BEGIN
    UPDATE reservations
       SET state = 'settled', answered_ms = p_answered, ended_ms = p_ended, cause = p_cause,
           billed_secs = p_billed, cost = p_cost
     WHERE id = p_id AND state = 'open' AND amount = p_cost + p_released
       AND p_cost >= 0 AND p_released >= 0
    RETURNING * INTO r;
    IF NOT FOUND THEN
        SELECT * INTO r FROM reservations WHERE id = p_id;
        IF NOT FOUND THEN
            RETURN 'missing';
        ELSIF r.state <> 'open' THEN
            RETURN 'already';
        END IF;
        RETURN 'mismatch';
    END IF;
    UPDATE accounts SET balance = balance - p_cost, reserved = reserved - r.amount
     WHERE id = r.account_id
    RETURNING balance, reserved INTO bal, res;
    IF r.card_id IS NOT NULL THEN
        UPDATE cards SET quota_reserved = quota_reserved - 1, quota_used = quota_used + p_quota_used
         WHERE id = r.card_id;
    END IF;
    IF p_debit THEN
        INSERT INTO ledger (account_id, card_id, kind, amount, calls, balance_after, reserved_after, cause, reference, created_ms)
        VALUES (r.account_id, r.card_id, 'debit', p_cost, p_debit_calls, bal, res + p_released, 'call', p_call, p_now);
    END IF;
    INSERT INTO ledger (account_id, card_id, kind, amount, calls, balance_after, reserved_after, cause, reference, created_ms)
    VALUES (r.account_id, r.card_id, 'release', p_released, p_release_calls, bal, res, 'call', p_call, p_now);
    RETURN 'done';
END $$;

-- The earlier function computed the billing itself (a second copy of the rules).
DROP FUNCTION freecall_settle(bigint, bigint, bigint, bigint, text, text, bigint);
