"""The stand-in guest, booted once per test session."""

import pytest

from tests.conftest import require_root


@pytest.fixture(scope="session")
def guest(tmp_path_factory):
    require_root()
    from tests.vm.guest import Guest

    g = Guest(tmp_path_factory.mktemp("guest"))
    try:
        g.start()
    except Exception:
        g.stop()
        raise
    print(f"\nstand-in guest ready in {g.boot_seconds:.1f} s")
    yield g
    g.stop()


@pytest.fixture
def clean(guest):
    """The guest, with every share unshared and both items deleted after the test."""
    from tests.vm.test_shares import unshare_all

    yield guest
    unshare_all(guest)
    guest.kvp.delete(0, "cifsmount", missing_ok=True)
    guest.kvp.delete(0, "cifsumount", missing_ok=True)
    guest.sh("rc-service moby-agent reload")
    guest.settled()
