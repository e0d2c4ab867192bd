from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Job ledger and workers"

    def ready(self) -> None:
        from django.conf import settings

        from workers import checks, job_minutes, registry, retention  # noqa: F401 - checks registers the registry's check

        # The runtime's own duties; the apps add theirs in their ready() (workers.registry).
        registry.duty("pruning", retention.prune_duty, every=retention.PRUNE_INTERVAL_SECONDS,
                      slice_seconds=retention.PRUNE_SLICE_SECONDS * 2)
        registry.duty("folding the job counts", retention.fold_job_counts, every=settings.HEARTBEAT_INTERVAL_SECONDS)
        registry.duty("folding the per-minute job counts", job_minutes.fold_job_minutes,
                      every=settings.HEARTBEAT_INTERVAL_SECONDS)
        registry.prune(job_minutes.PRUNE_KIND, job_minutes.prune_job_minutes)
