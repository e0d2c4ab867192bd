from django.apps import AppConfig


class SitesConfig(AppConfig):
    name = "sites"
    verbose_name = "Sites"

    def ready(self) -> None:
        from sites import receivers  # noqa: F401 - connects signal receivers
        from dlq import corrections
        from sites import budget, services, spend_hours
        from workers import registry

        # Its jobs carry an id only: a dead one's page in the admin links the row to fix.
        corrections.id_names_row("lead_id", "leads.Lead", "lead")

        registry.queue(services.SITE_QUEUE, task=services.SITE_TASK, app=self.name)
        # AI_DAILY_BUDGET_USD: paused at the budget by the leader's sweep; a job published before the
        # pause waits instead of paying.
        registry.gate(services.SITE_QUEUE, "AI budget", hold=budget.hold_if_over_budget,
                      sweep=budget.enforce_daily_budget)
        registry.prune(spend_hours.PRUNE_KIND, spend_hours.prune_spend_hours)
