-- NextJobAt asks for the earliest time any job could be claimed (its run_at,
-- or its lease end when claimed). Without an index on that expression every
-- call scanned the jobs table: a third of the server's CPU with thousands of
-- payments in flight (docs/benchmarks.md).
CREATE INDEX jobs_by_due ON jobs (max(run_at, coalesce(leased_until, run_at)));
