-- Node leases. A node's lease runs until its last heartbeat plus the lease time the
-- survivors are configured with. Each start of a node is a new incarnation (`epoch`); a
-- heartbeat renews only the incarnation that holds the row and is not fenced. When a lease
-- has run out, one survivor claims the node (`taker`, for `taker_until_ms`), which fences
-- it (`fenced_ms`): the old incarnation can no longer renew, and learns it must stop.
ALTER TABLE nodes ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN fenced_ms BIGINT;
ALTER TABLE nodes ADD COLUMN taker TEXT;
ALTER TABLE nodes ADD COLUMN taker_until_ms BIGINT;
ALTER TABLE nodes ADD COLUMN taken_calls BIGINT NOT NULL DEFAULT 0;
