from django.dispatch import receiver

from leads.signals import lead_qualified
from sites.services import enqueue_site_generation


@receiver(lead_qualified)
def generate_its_site(sender, lead, **kwargs) -> None:
    """In the qualifying transaction: the site job exists if and only if the qualification committed.
    Its key is the lead's, so a duplicate merged into a qualified lead gets no second site."""
    enqueue_site_generation(lead)
