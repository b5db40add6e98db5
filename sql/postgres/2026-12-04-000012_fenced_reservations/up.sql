-- A fenced node reserves nothing. Once a survivor has claimed a node (and settles what it
-- left open), the node's old incarnation may still be running, cut off, until its next
-- heartbeat tells it so: a call it admits meanwhile is refused here, in the store, so no
-- reservation can appear after the survivor's settlement and be billed by nobody.
-- The node's row is read FOR SHARE: a survivor's claim (an UPDATE of that row) waits for
-- every reservation in flight to commit, and a reservation that comes after the claim
-- sees the fence. Reservations of one node share the lock and do not wait for each other.
CREATE FUNCTION freecall_refuse_fenced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    fenced BIGINT;
BEGIN
    SELECT fenced_ms INTO fenced FROM nodes WHERE id = NEW.node FOR SHARE;
    IF fenced IS NOT NULL THEN
        RAISE EXCEPTION 'this switch was taken over by another node (fenced): it may reserve nothing';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER reservations_of_a_fenced_node BEFORE INSERT ON reservations
    FOR EACH ROW EXECUTE FUNCTION freecall_refuse_fenced();
