from django.dispatch import Signal

# Sent inside the transaction that moves a job to the dead-letter queue: kwargs job, entry.
job_dead_lettered = Signal()

# Sent inside the transaction that takes a job out of the dead-letter queue and back to pending
# (dlq requeue): kwargs job. Receivers undo what job_dead_lettered did to their rows.
job_requeued = Signal()

# Sent by the leading dispatcher once per recovery sweep (about once a second), outside any
# transaction: an app's periodic check that must run on one process only (the email breaker). Each
# receiver is isolated: one that raises is logged and the others, and the round, go on.
leader_sweep = Signal()
