from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"
    verbose_name = "Delivery"

    def ready(self) -> None:
        from delivery import receivers  # noqa: F401 - connects signal receivers
        from delivery import services
        from workers import registry

        registry.queue(services.DELIVERY_QUEUE, task=services.STEP_TASK, app=self.name)
