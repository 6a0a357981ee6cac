"""cifsmount / cifsumount rules the grammar properties do not pin down,
from mutmut's survivors; against the public functions of items.py."""

import pytest

from agent.shares.items import CIFSMOUNT, ShareError, credentials_file, parse_mount, parse_umount, redact_item


def test_shown_options_and_credentials_file_carry_the_domain():
    spec = parse_mount("/c;/C;username=me,password=p w,domain=CORP,noperm")
    assert spec.shown_options() == ["noperm", "username=me", "domain=CORP", "password=***"]
    assert credentials_file(spec) == "username=me\npassword=p w\ndomain=CORP\n"


@pytest.mark.parametrize(
    "value, shown",
    [
        ("/c;/C;username=u,password=a,,b,noperm", "/c;/C;username=u,password=***,noperm"),
        ("/c;/C;username=u,PASS=x", "/c;/C;username=u,PASS=***"),
        ("/c\n/C\nu\nsecret\nnoperm", "/c\n/C\nu\n***\nnoperm"),
        ("/c\n/C\nu\nsecret\npassword=x,noperm", "/c\n/C\nu\n***\npassword=***,noperm"),
        # A misshapen v2 item (not five lines): the username line is hidden too,
        # as it cannot be told from the password line for certain.
        ("/c\n/C\nu\nsecret", "/c\n/C\n***\n***"),
        # More than five lines is misshapen too: every line after the first
        # two is hidden (which is the password cannot be told for certain).
        ("/c\n/C\nu\nsecret\nnoperm\npassword=y", "/c\n/C\n***\n***\n***\n***"),
    ],
)
def test_redaction_replaces_exactly_the_passwords(value, shown):
    assert redact_item(CIFSMOUNT, value) == shown
    assert redact_item("other", value) == value


@pytest.mark.parametrize(
    "value, result",
    [
        ("/c;/C", ("/c", "/C")),
        ("/c\n/C", ("/c", "/C")),
        ("/c;", ("/c", "/c")),
        ("/c\n", ("/c", "/c")),
    ],
)
def test_umount_items(value, result):
    assert parse_umount(value) == result


@pytest.mark.parametrize(
    "value, message",
    [
        ("/c", "a cifsumount item is '<mountpoint>;<alias>' (or the two on separate lines)"),
        ("/c;/C;x", "a cifsumount item is"),
        ("/c \n/C", "mount point contains a forbidden character"),
        ("/etc;/C", "mount point '/etc' is a system directory"),
        ("/c;/etc", "alias '/etc' is a system directory"),
        (";/C", "mount point is empty"),
    ],
)
def test_bad_umount_items_are_refused_by_name(value, message):
    with pytest.raises(ShareError) as info:
        parse_umount(value)
    assert message in str(info.value)


def test_the_limits_at_their_boundaries():
    base = "/c;/C;username=u,password=p"
    # 33 parts (username and password among them) are over the count; 32 are
    # not (those are refused, but for the repeated option).
    with pytest.raises(ShareError, match="more than 32 options"):
        parse_mount(base + "," + ",".join(["nobrl"] * 31))
    with pytest.raises(ShareError, match="given twice"):
        parse_mount(base + "," + ",".join(["nobrl"] * 30))
    assert parse_mount("/c;/C;username=" + "u" * 256 + ",password=p").username == "u" * 256
    with pytest.raises(ShareError, match="username"):
        parse_mount("/c;/C;username=" + "u" * 257 + ",password=p")
    assert parse_mount("/c\n/C\n" + "u" * 256 + "\np\n").username == "u" * 256
    with pytest.raises(ShareError, match="username"):
        parse_mount("/c\n/C\n" + "u" * 257 + "\np\n")
    # The kernel refuses a domain of 256 bytes (CIFS_MAX_DOMAINNAME_LEN, NUL
    # included): 255 is the most.
    assert parse_mount(base + ",domain=" + "d" * 255).domain == "d" * 255
    with pytest.raises(ShareError, match="domain"):
        parse_mount(base + ",domain=" + "d" * 256)
