"""Email sending (queue email-sending): transactional and campaign email with open/click tracking. Not built yet."""
