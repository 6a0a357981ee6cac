"""Where shares are read from and what is mounted: /proc/self/mountinfo.

Pure: parse_mountinfo() takes the file's text; the agent and doctor both use
it (one reading of the mount table).
"""

from typing import List, Optional, Tuple

from agent.record import dataclass


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo."""

    mount_id: int
    parent: int
    dev: str
    root: str
    target: str
    fstype: str
    source: str
    options: str


def _unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        octal = text[i + 1 : i + 4]
        if text[i] == "\\" and len(octal) == 3 and octal.isdigit():
            out.append(chr(int(octal, 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> Tuple[MountEntry, ...]:
    """Entries in mount order; malformed lines are skipped. Never raises."""
    entries = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
            entries.append(
                MountEntry(
                    mount_id=int(fields[0]),
                    parent=int(fields[1]),
                    dev=fields[2],
                    root=_unescape(fields[3]),
                    target=_unescape(fields[4]),
                    fstype=fields[sep + 1],
                    source=_unescape(fields[sep + 2]),
                    options=fields[sep + 3] if len(fields) > sep + 3 else "",
                )
            )
        except (ValueError, IndexError):
            continue
    return tuple(entries)


def is_mounted(entries: Tuple[MountEntry, ...], target: str) -> bool:
    """Whether anything is mounted at `target` (e.g. /Database): the one
    answer the agent and doctor share."""
    return any(e.target == target for e in entries)


def top_mount(entries: Tuple[MountEntry, ...], target: str) -> Optional[MountEntry]:
    """The mount visible at `target` (the last one mounted there)."""
    found = None
    for entry in entries:
        if entry.target == target:
            found = entry
    return found


def stacked(entries: Tuple[MountEntry, ...], target: str, source: Optional[str]) -> List[MountEntry]:
    """The mounts at `target`, bottom first: of the share `source`, or any
    (source None: at an alias, which only the agent mounts on, a bind made
    while the share was being unmounted behind its back can be a bind of the
    bare directory, and stacks up)."""
    return [e for e in entries if e.target == target and (source is None or (e.fstype == "cifs" and
                                                                                 e.source == source))]
