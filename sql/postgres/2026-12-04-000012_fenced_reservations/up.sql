-- A fenced node reserves nothing. Once a survivor has claimed a node (and settles what it
-- left open), the node's old incarnation may still be running, cut off, until its next
-- heartbeat tells it so: a call it admits meanwhile is refused here, in the store, so no
-- reservation can appear after the survivor's settlement and be billed by nobody.
-- Each reservation holds the node's advisory lock shared (class 7242002, the node id's
-- hash) to the end of its transaction; a survivor's claim takes it exclusive before it
-- fences the node, so the claim waits for every reservation in flight (which its
-- settlement then sees), and a reservation after the claim waits for it and sees the
-- fence. The lock queue is fair and nothing is written to the node's row.
CREATE FUNCTION freecall_refuse_fenced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(7242002, hashtext(NEW.node));
    IF EXISTS (SELECT 1 FROM nodes WHERE id = NEW.node AND fenced_ms IS NOT NULL) THEN
        RAISE EXCEPTION 'this switch was taken over by another node (fenced): it may reserve nothing';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER reservations_of_a_fenced_node BEFORE INSERT ON reservations
    FOR EACH ROW EXECUTE FUNCTION freecall_refuse_fenced();
