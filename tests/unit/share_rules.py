"""The README's allow-list for cifsmount options, written from the rules
(not from agent/shares/items.py), for the tests' oracles."""

import re

FLAGS = {"noperm", "nobrl", "mfsymlinks", "nounix", "noserverino", "serverino", "nocase", "ro", "rw", "hard", "soft",
         "nodfs"}
VERSIONS = {"2.0", "2.1", "3", "3.0", "3.02", "3.0.2", "3.1.1", "3.11", "default"}  # 2.0 to 3.1.1
SEC = {"ntlmssp", "ntlmsspi", "ntlmv2", "ntlmv2i", "krb5", "krb5i"}
# Flags that undo each other: never both in one item.
CONTRADICTIONS = [("ro", "rw"), ("hard", "soft"), ("serverino", "noserverino")]


def allowed_option(option: str, max_id: int = 65535) -> bool:
    """Whether a mount option (as plan shows it, credentials excluded) is
    one the rules allow, in the one form it is passed in: lower-case names,
    decimal numbers without leading zeros, modes as 0NNN, lower-case
    vers/sec/cache/iocharset values."""
    name, eq, value = option.partition("=")
    if not eq:
        return name in FLAGS
    if name == "vers":
        return value in VERSIONS
    if name == "iocharset":
        return re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,19}", value) is not None
    if name in ("uid", "gid"):
        return re.fullmatch(r"0|[1-9][0-9]*", value) is not None and int(value) <= max_id
    if name in ("file_mode", "dir_mode"):
        return re.fullmatch(r"0[0-7]{3}", value) is not None
    if name == "cache":
        return value in ("strict", "loose", "none")
    if name == "actimeo":
        return re.fullmatch(r"0|[1-9][0-9]*", value) is not None and int(value) <= 3600
    if name == "sec":
        return value in SEC
    return False


def passed_number(name: str, number: int) -> str:
    """How the rules say a number option is passed: modes as 0NNN (octal),
    the others in decimal without leading zeros."""
    if name in ("file_mode", "dir_mode"):
        return f"{name}=0{number // 64}{number // 8 % 8}{number % 8}"
    return f"{name}={number}"


def account(written: str, domain_option=None):
    """(username, domain) mount.cifs is given for a user name as written and
    a domain= option (or None): DOMAIN\\user is split; user@domain stays
    whole; a domain= naming the same domain (ignoring case) adds nothing."""
    if "\\" in written:
        domain, user = written.split("\\")
        return user, domain
    return written, domain_option
