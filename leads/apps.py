from django.apps import AppConfig


class LeadsConfig(AppConfig):
    name = "leads"
    verbose_name = "Leads"

    def ready(self) -> None:
        from leads import receivers  # noqa: F401 - connects signal receivers
        from dlq import corrections as dlq_corrections
        from leads import corrections, retention, services
        from workers import registry

        dlq_corrections.corrector(corrections.LEAD_CORRECTOR)

        registry.queue(services.LEAD_QUEUE, task=services.LEAD_TASK, app=self.name)
        registry.on_cancel(services.LEAD_QUEUE, services.cancel_submissions)
        registry.prune("lead submissions", retention.prune_submissions)
        registry.prune("expired webhook idempotency keys", retention.prune_idempotency_keys)
