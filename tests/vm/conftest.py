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
    """The guest with no share and neither item, before and after the test
    (an earlier module may leave a drive mounted: a test that waits for its
    own mount would see that one)."""
    from tests.vm.test_shares import unshare_all

    def unshared():
        unshare_all(guest)
        guest.kvp.delete(0, "cifsmount", missing_ok=True)
        guest.kvp.delete(0, "cifsumount", missing_ok=True)

    unshared()
    guest.settled()
    yield guest
    unshared()
    guest.sh("rc-service moby-agent reload")
    guest.settled()
