#!/bin/sh
# mobyconfig, as the 2016 VM's scripts call it: get|exists|dir|path|find KEY
# (set is refused: the configuration is immutable). Backed by moby-agent.
exec /usr/bin/moby-agent config "$@"
