# moby-agent. `make test` is the README's test command; see README.md.
PREFIX    ?= /usr
DESTDIR   ?=
LIBDIR    ?= $(PREFIX)/lib/moby-agent
PYTHON    ?= python3



# The package, one folder per capability (git ls-files would miss new files).
AGENT_SOURCES := $(wildcard agent/*.py agent/*/*.py)

.PHONY: all test test-py39 lint install install-lib install-pyc install-etc bench soak mutate demo demo-shell demo-root image image-test clean

all: test

test:
	sh tests/run-all

# Python 3.9 compatibility: unit and no-root integration tests under a 3.9
# interpreter (not in `make test`: Debian has none). PYTHON39=/path/to/python3.9
test-py39:
	sh tests/tools/py39 $(PYTHON39)

# Lint alone (the test command runs it too).
lint:
	sh tests/tools/lint "$$(sh tests/tools/setup)"

demo:
	sh tests/demo

demo-shell:
	sh tests/demo --shell

# Without a guest (no root needed): the agent against a fixture root.
demo-root:
	venv=$$(sh tests/tools/setup) && PYTHONPATH=$(CURDIR) $$venv/bin/python tests/demo_root.py

# The layout an image build uses: the package in a private directory, a
# wrapper on PATH, the OpenRC scripts and a commented default config. The
# Alpine package gets the first two from the wheel (pyproject.toml's
# data-files and script-files: the same paths) and the rest from
# install-pyc and install-etc.
install: install-lib install-pyc install-etc

install-lib:
	for f in $(AGENT_SOURCES); do install -D -m 0644 "$$f" "$(DESTDIR)$(LIBDIR)/$$f" || exit 1; done
	install -D -m 0755 packaging/moby-agent $(DESTDIR)$(PREFIX)/bin/moby-agent
	install -D -m 0755 packaging/mobyconfig $(DESTDIR)$(PREFIX)/bin/mobyconfig

# Bytecode now, so that no start compiles the sources (a fresh tmpfs root
# at every boot, a read-only /usr, PYTHONDONTWRITEBYTECODE). checked-hash:
# used while the source is unchanged, whatever the file times; -d:
# tracebacks name the installed path, not DESTDIR's.
install-pyc:
	$(PYTHON) -m compileall -q -d $(LIBDIR)/agent --invalidation-mode checked-hash $(DESTDIR)$(LIBDIR)/agent

install-etc:
	install -d $(DESTDIR)/etc/moby-agent/daemon.json.d
	install -D -m 0755 openrc/moby-agent $(DESTDIR)/etc/init.d/moby-agent
	install -D -m 0644 openrc/moby-agent.confd $(DESTDIR)/etc/conf.d/moby-agent
	install -D -m 0755 openrc/hv_kvp_daemon $(DESTDIR)/etc/init.d/hv_kvp_daemon
	install -D -m 0644 openrc/hv_kvp_daemon.confd $(DESTDIR)/etc/conf.d/hv_kvp_daemon
	install -D -m 0644 packaging/agent.toml $(DESTDIR)/etc/moby-agent/agent.toml

# Every benchmark; writes docs/benchmarks.md (about 5 minutes; the guest part needs root).
bench:
	venv=$$(sh tests/tools/setup) && PYTHONPATH=$(CURDIR) $$venv/bin/python bench/run_all.py

# The long reliability runs (about 40 minutes): every parser with 10,000
# examples, 200 SIGKILLs mid-write, and a 30-minute soak.
soak:
	venv=$$(sh tests/tools/setup) && \
	  HYPOTHESIS_PROFILE=soak PYTHONPATH=$(CURDIR) $$venv/bin/pytest -q tests/unit && \
	  MOBY_CRASH_ROUNDS=200 PYTHONPATH=$(CURDIR) $$venv/bin/pytest -q -s tests/integration/test_crash.py && \
	  PYTHONPATH=$(CURDIR) $$venv/bin/python bench/soak.py --minutes 30

# Mutation testing of the modules that decide (mutmut 3; pyproject.toml
# [tool.mutmut]) against the unit and in-process integration tests; ends with
# "killed K of N mutants (P%)". Not in `make test`: about 30 minutes on
# 2 busy cores (MUTATE_JOBS=N sets the parallel workers, default 2).
# docs/reliability.md lists the survivors that are equivalent.
mutate:
	venv=$$(sh tests/tools/setup) && sh tests/tools/mutate "$$venv"

# The Alpine image (Dockerfile); both exit 0 with a message without a Docker engine.
image:
	sh packaging/image-test

image-test:
	sh packaging/image-test test

clean:
	rm -rf build dist *.egg-info
