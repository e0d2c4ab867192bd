from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"
    verbose_name = "Delivery"

    def ready(self) -> None:
        from delivery import receivers  # noqa: F401 - connects signal receivers
        from delivery import services
        from dlq import corrections
        from workers import registry

        # Its jobs carry an id only: a dead one's page in the admin links the row to fix.
        corrections.id_names_row("step_id", "delivery.DeliveryStep", "delivery step")

        registry.queue(services.DELIVERY_QUEUE, task=services.STEP_TASK, app=self.name)
        registry.on_cancel(services.DELIVERY_QUEUE, services.cancel_steps)
