#!/usr/bin/python3
# moby-agent, as installed by `make install`: the package lives in a private
# directory so that its name cannot clash with anything in site-packages.
import sys

sys.path.insert(0, "/usr/lib/moby-agent")
from agent.cli import main  # noqa: E402

sys.exit(main())
