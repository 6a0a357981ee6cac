"""Regular expressions compiled at their first use, not at import.

A module-level re.compile costs 0.1 to 2.5 ms at every start of every
command (the host-name and URL patterns the most); most of them check inputs
a pass with nothing to do never sees. Only the methods the agent uses."""

import re
from typing import AnyStr, Callable, Generic, Iterator, Optional, Union


class LazyPattern(Generic[AnyStr]):
    __slots__ = ("source", "flags", "_compiled")

    def __init__(self, source: AnyStr, flags: int = 0) -> None:
        self.source: AnyStr = source
        self.flags = flags
        self._compiled: Optional[re.Pattern[AnyStr]] = None

    def compiled(self) -> "re.Pattern[AnyStr]":
        if self._compiled is None:
            self._compiled = re.compile(self.source, self.flags)
        return self._compiled

    def match(self, text: AnyStr, pos: int = 0) -> "Optional[re.Match[AnyStr]]":
        return self.compiled().match(text, pos)

    def fullmatch(self, text: AnyStr) -> "Optional[re.Match[AnyStr]]":
        return self.compiled().fullmatch(text)

    def search(self, text: AnyStr) -> "Optional[re.Match[AnyStr]]":
        return self.compiled().search(text)

    def finditer(self, text: AnyStr) -> "Iterator[re.Match[AnyStr]]":
        return self.compiled().finditer(text)

    def sub(self, repl: "Union[AnyStr, Callable[[re.Match[AnyStr]], AnyStr]]", text: AnyStr) -> AnyStr:
        return self.compiled().sub(repl, text)


def lazy(source: AnyStr, flags: int = 0) -> "LazyPattern[AnyStr]":
    return LazyPattern(source, flags)
