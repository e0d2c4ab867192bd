from django.apps import AppConfig


class LeadsConfig(AppConfig):
    name = "leads"
    verbose_name = "Leads"

    def ready(self) -> None:
        from leads import receivers  # noqa: F401 - connects signal receivers
        from leads import retention, services
        from workers import registry

        registry.queue(services.LEAD_QUEUE, task=services.LEAD_TASK, app=self.name)
        registry.prune("lead submissions", retention.prune_submissions)
        registry.prune("expired webhook idempotency keys", retention.prune_idempotency_keys)
