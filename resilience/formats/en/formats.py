"""How the admin writes dates and times: with seconds and the zone, as the dashboard does
(e.g. 2026-11-30 08:20:15 UTC), so a time read in the admin is never ambiguous."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
