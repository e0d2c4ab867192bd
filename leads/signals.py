"""What leads announces, for the apps above it to act on: leads imports none of them."""
from django.dispatch import Signal

# Sent inside the transaction that qualifies a lead (leads.services.process_submission): kwargs lead.
# A receiver's writes commit or roll back with the qualification, and one that raises rolls it back
# (sent with send, not send_robust). Sent again when a duplicate is merged into a qualified lead:
# receivers make their work once per lead (an idempotency key), as sites' site job does.
lead_qualified = Signal()
