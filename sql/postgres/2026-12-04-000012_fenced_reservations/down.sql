DROP TRIGGER reservations_of_a_fenced_node ON reservations;
DROP FUNCTION freecall_refuse_fenced();
