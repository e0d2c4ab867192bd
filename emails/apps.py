from django.apps import AppConfig


class EmailsConfig(AppConfig):
    name = "emails"
    verbose_name = "Email"

    def ready(self) -> None:
        from emails import checks, receivers  # noqa: F401 - registers the deploy check, connects receivers
        from emails import breaker, retention, services
        from dlq import corrections
        from workers import registry

        # Its jobs carry an id only: a dead one's page in the admin links the row to fix.
        corrections.id_names_row("message_id", "emails.Message", "email message")

        registry.queue(services.EMAIL_QUEUE, task=services.SEND_TASK, app=self.name)
        registry.on_cancel(services.EMAIL_QUEUE, services.cancel_messages)
        registry.prune("email tracking events", retention.prune_events)
        registry.gate(services.EMAIL_QUEUE, "email breaker", hold=breaker.hold_if_paused,
                      sweep=breaker.enforce_breaker)
