from django.apps import AppConfig


class DlqConfig(AppConfig):
    name = "dlq"
    verbose_name = "Dead-letter queue"

    def ready(self) -> None:
        from dlq import services
        from workers import registry

        registry.dead_letter_store(services.record_dead_letter)
        registry.keep_jobs("unresolved dead letters", services.unresolved_job_ids)
        registry.prune("resolved dead-letter entries", services.prune_resolved)
