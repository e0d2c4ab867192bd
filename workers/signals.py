from django.dispatch import Signal

# Sent inside the transaction that moves a job to the dead-letter queue: kwargs job, entry.
job_dead_lettered = Signal()

# Sent inside the transaction that takes a job out of the dead-letter queue and back to pending
# (dlq requeue): kwargs job. Receivers undo what job_dead_lettered did to their rows.
job_requeued = Signal()
