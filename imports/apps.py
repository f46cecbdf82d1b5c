from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "imports"
    verbose_name = "Data import"

    def ready(self) -> None:
        from imports import signals  # noqa: F401  (held results retried on save)
