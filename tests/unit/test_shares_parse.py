import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.shares.items import Limits, ShareError, credentials_file, parse_mount, parse_umount
from tests.unit.share_rules import allowed_option

V1 = "/c;/C;username=me,password=s3cret,noperm"


def test_v1():
    spec = parse_mount(V1)
    assert (spec.mountpoint, spec.alias, spec.share) == ("/c", "/C", "c")
    assert (spec.username, spec.password, spec.domain, spec.options) == ("me", "s3cret", None, ("noperm",))
    assert "s3cret" not in repr(spec)


def test_v1_later_host_options():
    spec = parse_mount("/d;/D;username=u,password=p,noperm,iocharset=utf8,nobrl,mfsymlinks,vers=3.02,domain=CORP")
    assert spec.options == ("noperm", "iocharset=utf8", "nobrl", "mfsymlinks", "vers=3.02")
    assert spec.domain == "CORP"


def test_v1_password_with_escaped_comma():
    assert parse_mount("/c;/C;username=u,password=a,,b=c d,noperm").password == "a,b=c d"


def test_v2_password_with_commas_equals_and_spaces():
    spec = parse_mount("/c\n/C\nme\np,a=s s;w\nnoperm,vers=3.1.1")
    assert (spec.username, spec.password, spec.options) == ("me", "p,a=s s;w", ("noperm", "vers=3.1.1"))
    assert credentials_file(spec) == "username=me\npassword=p,a=s s;w\n"


def test_umount_both_forms():
    assert parse_umount("/c;/C") == ("/c", "/C")
    assert parse_umount("/c\n/C") == ("/c", "/C")


def test_fingerprint_changes_with_credentials_and_options():
    a = parse_mount(V1)
    assert a.fingerprint() == parse_mount(V1).fingerprint()
    assert a.fingerprint() != parse_mount(V1.replace("s3cret", "other")).fingerprint()
    assert a.fingerprint() != parse_mount(V1 + ",nobrl").fingerprint()


def test_shown_options_hide_the_password():
    assert parse_mount(V1).shown_options() == ["noperm", "username=me", "password=***"]


HOSTILE = [
    ("/c;/C;username=u,password=p,credentials=/etc/shadow", "option 'credentials' is not allowed"),
    ("/c;/C;username=u,password=p,setuids", "option 'setuids' is not allowed"),
    ("/c;/C;username=u,password=p,exec", "option 'exec' is not allowed"),
    ("/c;/C;username=u,password=p,suid", "option 'suid' is not allowed"),
    ("/c;/C;username=u,password=p,noperm=1", "option 'noperm' takes no value"),
    ("/etc;/C;username=u,password=p", "mount point '/etc' is a system directory"),
    ("/;/C;username=u,password=p", "mount point '/' is a system directory"),
    ("/c;/proc;username=u,password=p", "alias '/proc' is a system directory"),
    ("/c;/../etc;username=u,password=p", "alias '/../etc' is not a plain absolute path"),
    ("c;/C;username=u,password=p", "mount point 'c' is not a plain absolute path"),
    ("/cc;/C;username=u,password=p", "mount point '/cc' is not allowed"),
    ("/c;/C;username=u,password=p;x", "a v1 item has 3 fields"),
    ("/c;/C", "a v1 item has 3 fields"),
    ("/c;/C;password=p", "options carry no username"),
    ("/c;/C;username=u,password=p,uid=70000", "option 'uid' must be between 0 and 65535"),
    ("/c;/C;username=u,password=p,file_mode=4755", "option 'file_mode' must be between 0 and 777"),
    ("/c;/C;username=u,password=p,file_mode=x", "option 'file_mode' is not a number"),
    ("/c;/C;username=u,password=p,sec=none", "option 'sec': this value is not allowed"),
    ("/c;/C;username=u,password=p,sec=ntlm", "option 'sec': this value is not allowed"),
    ("/c;/C;username=u,password=p,vers=1.0", "option 'vers': this version is not allowed"),
    ("/c;/C;username=u,password=p,vers=3.0,vers=1.0", "option 'vers' is given twice"),
    ("/c;/C;username=u,username=root,password=p", "option 'username' is given twice"),
    ("/c;/C;username=u%pw,password=p", "must not carry a password"),
    ("/c;/C;username=u,password=p,iocharset=../x", "option 'iocharset' has forbidden characters"),
    ("/c;/C;username=u,password=p,domain=a;b", "a v1 item has 3 fields"),
    ("/c;/C;username=u,password=p,domain=a b", "option 'domain' has forbidden characters"),
    ("/c;/C;username=u,password=p\0x", "NUL"),
    ("/c\n/C\nu\np\ncredentials=/x", "option 'credentials' is not allowed"),
    ("/c\n/C\nu\np\nusername=root", "not in options"),
    ("/c\n/C\nu\np", "a v2 item has 5 lines"),
    ("/c\n/C\nu\np\nnoperm\nextra", "a v2 item has 5 lines"),
    ("/c\n/C\n\np\nnoperm", "username is empty"),
    ("/c\n/C\nu,x\np\nnoperm", "username is empty, too long or has forbidden characters"),
    ("/c\n/C\nu\n" + "p" * 600 + "\nnoperm", "password is longer than 512 bytes"),
    ("/c;/C;username=u,password=" + "p" * 600, "password is longer than 512 bytes"),
    ("/c;/C;username=u,password=p," + ",".join(["noperm"] * 40), "more than 32 options"),
    ("/c;/c\t;username=u,password=p", "forbidden character"),
    ("/c;/C;username=u,password=p,mfsymlinks,nobrl,cache=loose,actimeo=99999", "option 'actimeo' must be between"),
]


@pytest.mark.parametrize("value, message", HOSTILE)
def test_hostile_items_are_rejected_by_name(value, message):
    with pytest.raises(ShareError) as info:
        parse_mount(value)
    assert message in str(info.value)
    assert "p" * 20 not in str(info.value)


def test_pattern_may_widen_but_never_to_system_directories():
    wide = Limits(pattern=r"^/.*$")
    assert parse_mount("/host/c;/C;username=u,password=p", wide).mountpoint == "/host/c"
    for bad in ("/", "/etc", "/etc/x", "/var", "/run/x", "/proc", "/sys", "/dev", "/usr/bin", "/a/../etc"):
        with pytest.raises(ShareError):
            parse_mount(f"{bad};/C;username=u,password=p", wide)


@given(st.text(max_size=200))
def test_any_text_parses_to_an_allowed_spec_or_share_error(value):
    try:
        spec = parse_mount(value)
    except ShareError as exc:
        assert str(exc)
        return
    assert re.fullmatch(r"/[A-Za-z]", spec.mountpoint) and re.fullmatch(r"/[A-Za-z]", spec.alias)
    assert all(allowed_option(o) for o in spec.options), spec.options
    assert "\n" not in spec.username + spec.password


option_words = st.sampled_from(
    ["noperm", "nobrl", "vers=3.02", "iocharset=utf8", "setuids", "credentials=/x", "uid=0", "uid=99999",
     "exec", "suid", "dev", "sec=none", "sec=ntlmssp", "cache=loose", "file_mode=0755", "file_mode=4755", ",",
     "password=a,,b", "domain=X", "username=v", "ro"]
)



@given(st.lists(option_words, max_size=8), st.sampled_from(["/c", "/C", "/etc", "/", "/c/..", "/zz"]))
def test_structured_fuzz_never_lets_a_forbidden_option_through(words, mountpoint):
    value = f"{mountpoint};/C;username=u,password=p," + ",".join(words)
    try:
        spec = parse_mount(value)
    except ShareError:
        return
    assert spec.mountpoint in ("/c", "/C")
    assert all(allowed_option(o) for o in spec.options), spec.options
    assert not {"setuids", "exec", "suid", "dev"} & set(spec.options)
