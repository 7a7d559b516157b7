"""The worker agent: leases, the executor, reports."""
