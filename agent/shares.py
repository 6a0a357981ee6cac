"""cifsmount / cifsumount items: what the host asks the guest to mount."""

import re

CIFSMOUNT = "cifsmount"
SECRET_KEYS = (CIFSMOUNT,)
_PASSWORD = re.compile(r"(?i)((?:^|[,;])(?:password|pass)=)(?:[^,]|,,)*")


def redact_item(key: str, value: str) -> str:
    """The value with any password replaced by ***, for display."""
    if key not in SECRET_KEYS:
        return value
    if "\n" in value:  # v2: mountpoint, alias, username, password, options
        fields = value.split("\n")
        if len(fields) >= 4:
            fields[3] = "***"
        fields[4:] = [_PASSWORD.sub(r"\1***", f) for f in fields[4:]]
        return "\n".join(fields)
    return _PASSWORD.sub(r"\1***", value)
