-- executions_source led with merchant_id, so on a young table (never
-- analyzed) PostgreSQL could cache a generic plan for the Status API's
-- lookup by (merchant_id, reference_id) that walked this index on its
-- merchant_id prefix and filtered reference_id: every poll then read all of
-- the merchant's executions. Leading with source_id leaves that lookup only
-- executions_reference_key, and still serves the per-source queries
-- (source_id and merchant_id equal, newest id first).
DROP INDEX executions_source;
CREATE INDEX executions_source ON executions (source_id, merchant_id, id);
