"""Live reload on shared drives: SMB change notify re-emitted to the guest's
inotify watchers (watcher)."""
