from django.dispatch import Signal

# Sent inside the transaction that moves a job to the dead-letter queue: kwargs job, entry.
job_dead_lettered = Signal()
