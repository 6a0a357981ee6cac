"""Static network settings from the database: plan and netlink executors."""
