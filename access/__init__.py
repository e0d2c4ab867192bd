"""Who may use the admin pages and the admin API: staff sessions, and API tokens for scripts."""
