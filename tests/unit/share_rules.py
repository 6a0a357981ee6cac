"""The README's allow-list for cifsmount options, written from the rules
(not from agent/shares/items.py), for the tests' oracles."""

import re

FLAGS = {"noperm", "nobrl", "mfsymlinks", "nounix", "noserverino", "serverino", "nocase", "ro", "rw", "hard", "soft",
         "nodfs"}
VERSIONS = {"2.0", "2.1", "3", "3.0", "3.02", "3.0.2", "3.1.1", "3.11", "default"}  # 2.0 to 3.1.1
SEC = {"ntlmssp", "ntlmsspi", "ntlmv2", "ntlmv2i", "krb5", "krb5i"}


def allowed_option(option: str, max_id: int = 65535) -> bool:
    """Whether a mount option (as plan shows it, credentials excluded) is
    one the rules allow."""
    name, eq, value = option.partition("=")
    if not eq:
        return name in FLAGS
    if name == "vers":
        return value in VERSIONS
    if name == "iocharset":
        return re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,19}", value) is not None
    if name in ("uid", "gid"):
        return value.isdigit() and int(value) <= max_id
    if name in ("file_mode", "dir_mode"):
        return re.fullmatch(r"[0-7]+", value) is not None and int(value, 8) <= 0o777
    if name == "cache":
        return value in ("strict", "loose", "none")
    if name == "actimeo":
        return value.isdigit() and int(value) <= 3600
    if name == "sec":
        return value in SEC
    return False
