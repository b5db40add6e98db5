-- The numbers as the trunk of the call's last attempt got them (its number format,
-- prefixes and caller presentation): next to the dialled and calling numbers as the switch
-- read them. Empty for calls that reached no trunk.
ALTER TABLE cdrs ADD COLUMN sent_callee TEXT NOT NULL DEFAULT '';
ALTER TABLE cdrs ADD COLUMN sent_caller TEXT NOT NULL DEFAULT '';
