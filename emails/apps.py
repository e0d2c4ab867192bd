from django.apps import AppConfig


class EmailsConfig(AppConfig):
    name = "emails"
    verbose_name = "Email"

    def ready(self) -> None:
        from emails import checks, receivers  # noqa: F401 - registers the deploy check, connects receivers
        from emails import breaker, retention, services
        from workers import registry

        registry.queue(services.EMAIL_QUEUE, task=services.SEND_TASK, app=self.name)
        registry.prune("email tracking events", retention.prune_events)
        registry.gate(services.EMAIL_QUEUE, "email breaker", hold=breaker.hold_if_paused,
                      sweep=breaker.enforce_breaker)
