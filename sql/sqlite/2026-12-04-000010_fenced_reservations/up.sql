-- A fenced node reserves nothing. Once a survivor has claimed a node (and settles what it
-- left open), the node's old incarnation may still be running, cut off, until its next
-- heartbeat tells it so: a call it admits meanwhile is refused here, in the store, so no
-- reservation can appear after the survivor's settlement and be billed by nobody.
-- (SQLite runs one writer at a time: the claim and a reservation cannot interleave.)
CREATE TRIGGER reservations_of_a_fenced_node BEFORE INSERT ON reservations
WHEN EXISTS (SELECT 1 FROM nodes WHERE id = NEW.node AND fenced_ms IS NOT NULL)
BEGIN
    SELECT RAISE(ABORT, 'this switch was taken over by another node (fenced): it may reserve nothing');
END;
