"""SQL the runtime writes by hand, as text: standard library only, so that a process that does not
load Django (deploy/supervisor_events.py, psycopg2 alone) runs the very statements the ledger runs.
"""
from __future__ import annotations

# Prefixed to the ledger's statements of the hot path that only move a job along (dispatch, claim, lease
# renewal): their commit does not wait for the WAL to reach the disk (2.5 to 3 ms per commit measured
# on this machine, against 0.1 to 0.4 ms without). A crash of PostgreSQL's host can lose the last of
# them, never anything after them that is durable: a durable commit (the enqueue, the completion with
# the job's effects, a failure) flushes all the WAL written before it. What a lost one leaves is what
# the ledger already recovers from: a dispatch lost puts the job back to waiting (its message, if
# published, claims nothing unless the job is dispatched again, and then only once); a claim lost
# leaves the job dispatched (published again after JOB_REDISPATCH_SECONDS), and the attempt that ran
# cannot complete, its effects roll back; a renewal lost makes a lease end sooner.
NO_FSYNC = "SET LOCAL synchronous_commit TO OFF;"

# The main processes (their pids) that claimed the jobs now running under a node name (%s).
RUNNING_PIDS_SQL = (
    "SELECT DISTINCT worker_pid FROM workers_job"
    " WHERE state = 'running' AND worker = %s AND worker_pid IS NOT NULL"
)

# End now the leases of a node name's (%s) running jobs claimed by the processes of a list of pids (%s).
# The lease is set a minute in the past, beyond any JOB_LEASE_GRACE_SECONDS (at most 30 s): the grace
# is for a worker that may be only slow, and these processes are known to be gone.
EXPIRE_LEASES_SQL = (
    "UPDATE workers_job SET lease_expires_at = statement_timestamp() - interval '1 minute',"
    " updated_at = statement_timestamp()"
    " WHERE state = 'running' AND worker = %s AND worker_pid = ANY(%s)"
    " AND lease_expires_at > statement_timestamp() - interval '1 minute'"
)
