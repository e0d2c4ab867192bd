from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """What people and Prometheus see of the runtime: heartbeats, health rules, the dashboard and
    /metrics. The rows they read (jobs, heartbeats, counts) belong to the workers app."""

    name = "monitoring"
    verbose_name = "Monitoring"
