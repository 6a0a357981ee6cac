"""Drive sharing: cifsmount/cifsumount items (items), the mount table
(mountinfo), the share plan (plan) and its executors (apply)."""
