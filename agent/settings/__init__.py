"""The host's settings: the configuration database (database), daemon.json
(daemonjson), files copied into /etc, the plan (plan), its executors (apply)
and the Engine API client that verifies them (dockerapi)."""
