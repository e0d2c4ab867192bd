from django.apps import AppConfig


class EmailsConfig(AppConfig):
    name = "emails"
    verbose_name = "Email"

    def ready(self) -> None:
        from emails import checks, receivers  # noqa: F401 - registers the deploy check, connects receivers
