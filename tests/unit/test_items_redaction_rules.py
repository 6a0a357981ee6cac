"""Redaction, the mount pattern's cost bound and the option forms the other
item tests leave open, from README "Drive sharing" and items.py's rules
(mutmut's survivors of items.py). Each expected value is what the rule
says: a password (and, after one, anything that could be its tail) hidden,
nothing else."""

import pytest

from agent.shares import items
from agent.shares.items import CIFSMOUNT, Limits, ShareError, compile_pattern, parse_mount, parse_umount, redact_item


@pytest.fixture(autouse=True)
def no_compiled_patterns(monkeypatch):
    """compile_pattern caches per process: each test compiles afresh."""
    monkeypatch.setattr(items, "_COMPILED", {})


@pytest.mark.parametrize("value, shown", [
    # after a password, a credential option or a word that is no option may
    # be the tail of a password whose comma was not doubled: hidden
    ("/c;/C;username=u,password=p,domain=CORP,noperm", "/c;/C;username=u,password=***,***,noperm"),
    ("/c;/C;username=u,password=p,dom=CORP", "/c;/C;username=u,password=***,***"),
    ("/c;/C;username=u,password=p,workgroup=CORP", "/c;/C;username=u,password=***,***"),
    ("/c;/C;username=u,password=p,tail,noperm", "/c;/C;username=u,password=***,***,noperm"),
    ("/c;/C;username=u,password=p,foo=bar", "/c;/C;username=u,password=***,***"),
    # a user option after a password too: `password=x,username=QX` was the
    # password's tail shown (the attacker's pass, issue 14)
    ("/c;/C;password=p,username=u", "/c;/C;password=***,***"),
    ("/c;/C;username=me password=x,tail", "/c;/C;username=me password=***,***"),
    # user%password: everything after the first % is the password
    ("/c;/C;username=u%pw=x,noperm", "/c;/C;username=u%***,noperm"),
    ("/c;/C;username=u%p%w", "/c;/C;username=u%***"),
    ("/c;/C;username=u%p,tail", "/c;/C;username=u%***,***"),
    ("/c\n/C\nu%pw\np\nnoperm", "/c\n/C\nu%***\n***\nnoperm"),
    ("/c\n/C\nu%p%w\np\nnoperm", "/c\n/C\nu%***\n***\nnoperm"),
    # a ';' in a v1 password is part of it; the options after it are read
    ("/c;/C;username=u,password=a;b,noperm", "/c;/C;username=u,password=***,noperm"),
    # no password at all: nothing hidden
    ("/c;/C;username=u,setuids", "/c;/C;username=u,setuids"),
    ("/c;/C;noperm;x", "/c;/C;noperm;x"),
    # misshapen items (a trailing newline, a line missing): every word that
    # could be a password hidden, plain paths and valid options shown
    ("/c;/C;username=u,secret\n", "/c;/C;username=u,***\n"),
    ("/c;/C;username=u,password=p,noperm\n", "/c;/C;username=u,password=***,noperm\n"),
    ("/c\n/C\n/abc \n", "/c\n/C\n***\n"),
    ("/c\r\n/C\r\nu\r\n", "/c\r\n/C\r\n***\n"),
    ("/c\n/C\nnoperm,X\n", "/c\n/C\n***\n"),
    ("/c\n/C\nusername=u,setuids\n", "/c\n/C\n***\n"),
    ("/c\n/C\nusername=u%pw,noperm\n", "/c\n/C\n***\n"),  # past line 1 of a misshapen item: hidden whole
])
def test_redaction_hides_what_could_be_a_password_and_nothing_else(value, shown):
    assert redact_item(CIFSMOUNT, value) == shown


def test_a_url_password_ends_at_the_host_and_starts_after_the_first_colon():
    assert redact_item("proxy", "http://me:pa:ss@proxy:3128") == "http://me:***@proxy:3128"


@pytest.mark.parametrize("pattern", [
    "^/" + "x" * 197 + "$",  # 200 characters: the longest
    "^/[a-z]+$",
    "^/a*b*c*$",  # 3 quantifiers
    "^/a{2}b*c*d*$",  # a fixed count is no quantifier
    "^/(a*|b*)$",
    "^/(ab|cd)$",
])
def test_patterns_whose_cost_is_bounded_are_accepted(pattern):
    assert compile_pattern(pattern).pattern == pattern
    assert compile_pattern(pattern) is compile_pattern(pattern)


@pytest.mark.parametrize("pattern, problem", [
    ("^/" + "x" * 198 + "$", "longer than 200 characters"),
    ("^/a*b*c*d*$", "has more than 3 quantifiers"),
    ("^/(a)\\1$", "has a backreference"),
    ("^/(?=a)[a-z]$", "has a lookaround"),
    ("^/(?!a)[a-z]$", "has a lookaround"),
    ("^/(a)?(?(1)b|c)$", "has a conditional"),
    ("^/(a+)+$", "has a quantifier inside a quantified group"),
    ("^/(x|xx)*$", "has an alternation inside a quantified group"),
    ("^/(a|(?=b)c)$", "has a lookaround"),  # in the second branch
    ("^/((?!b)a|c)$", "has a lookaround"),  # in the first
])
def test_patterns_that_could_backtrack_are_refused_naming_why(pattern, problem):
    with pytest.raises(ShareError) as info:
        compile_pattern(pattern)
    assert str(info.value) == f"shares.mount_pattern is refused: {problem}"


def test_a_pattern_matches_after_a_fresh_compile():
    assert parse_mount("/c;/C;username=u,password=p").mountpoint == "/c"
    assert parse_umount("/c;/C") == ("/c", "/C")


def test_option_forms_the_parser_accepts():
    base = "/c;/C;username=u,password=p"
    assert parse_mount(base + ",workgroup=CORP").domain == "CORP"
    assert parse_mount(base + ",dom=CORP").domain == "CORP"
    assert parse_mount(base + ",domain=XCORP").domain == "XCORP"
    assert parse_mount(base + ",iocharset=X").options == ("iocharset=x",)
    # an empty option (a trailing comma, ",," outside a password) is none
    assert parse_mount(base + ",noperm,").options == ("noperm",)
    assert parse_mount("/c;/C;noperm,,nobrl,username=u").options == ("noperm", "nobrl")
    # no password= in a v1 item: an empty password (guest access)
    assert parse_mount("/c;/C;username=u").password == ""


@pytest.mark.parametrize("option", ["uid=X", "gid=1X", "file_mode=X", "dir_mode=07X"])
def test_a_letter_is_no_digit(option):
    with pytest.raises(ShareError, match="is not a number"):
        parse_mount("/c;/C;username=u,password=p," + option)


WIDE = r"^/[A-Za-z0-9/ ._-]*$"


def test_the_configured_forbidden_path_covers_alias_and_cifsumount_too():
    limits = Limits(pattern=WIDE, forbidden=("/D",))
    for value in ("/c;/D;username=u,password=p", "/c;/D/x;username=u,password=p"):
        with pytest.raises(ShareError, match="^alias '/D(/x)?' is a system directory$"):
            parse_mount(value, limits)
    with pytest.raises(ShareError, match="^mount point '/D' is a system directory$"):
        parse_umount("/D;/C", limits)
    with pytest.raises(ShareError, match="^alias '/D' is a system directory$"):
        parse_umount("/c;/D", limits)


def test_only_the_forbidden_path_and_what_is_below_it_are_refused():
    limits = Limits(pattern=WIDE, forbidden=("/X",))
    assert parse_mount("/c;/C;username=u,password=p", limits).mountpoint == "/c"
    assert parse_mount("/Xy;;username=u,password=p", limits).mountpoint == "/Xy"
    with pytest.raises(ShareError, match="system directory"):
        parse_mount("/X/y;;username=u,password=p", limits)
    # "/D/x" is not below "/D " (another name)
    assert parse_mount("/D/x;;username=u,password=p", Limits(pattern=WIDE, forbidden=("/D ",))).mountpoint == "/D/x"


def test_the_cifsumount_problem_is_its_grammar():
    for value in ("/c", "/c;/C;x"):
        with pytest.raises(ShareError) as info:
            parse_umount(value)
        assert str(info.value) == "a cifsumount item is '<mountpoint>;<alias>' (or the two on separate lines)"
