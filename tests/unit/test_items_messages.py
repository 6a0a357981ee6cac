"""The problem a refused cifsmount item gets, word for word: it is what
`plan`, `status`, pool 1 and the log show the host's user (README "Drive
sharing": a problem names the offending part, says what is allowed, and
never echoes a value that may be a password). Each expected text is
written from that rule for one refusal; the grammar properties check that
the part is named, these check the sentence (mutmut's survivors of
items.py's messages)."""

import pytest

from agent.shares.items import Limits, ShareError, parse_mount

V1 = "/c;/C;username=u,password=p"
FLAGS = "hard, mfsymlinks, nobrl, nocase, nodfs, noperm, noserverino, nounix, ro, rw, serverino, soft"
VALUED = "actimeo, cache, dir_mode, domain, file_mode, gid, iocharset, password, sec, uid, username, vers"
ALLOWED = ", ".join(sorted(FLAGS.split(", ") + VALUED.split(", ")))
NOT_SHOWN = "an option that is no mount option (not shown: it may be part of a password; write its commas as ,,)"


def problem(value, limits=Limits()):
    with pytest.raises(ShareError) as info:
        parse_mount(value, limits)
    return str(info.value)


@pytest.mark.parametrize(
    "value, expected",
    [
        # the whole item
        ("/c;/C;username=u\0", "the item contains a NUL character"),
        ("/c\r\n/C\r\nu\r\np\r\n", "the item has Windows line ends (CRLF); its lines must end with LF (\\n) only"),
        ("/c\n/C\nu\np", "a v2 item has 5 lines (mount point, alias, username, password, options), not 4"),
        ("/c;/C", "a v1 item has 3 fields separated by ';' (mount point;alias;options), not 2"),
        ("/c;/C;username=u,password=a;b",
         "a v1 item has 3 fields separated by ';' (mount point;alias;options), not 4: a ';' in a v1 password "
         "cannot be sent in the v1 format: use the v2 format (mount point, alias, username, password and "
         "options on separate lines)"),
        ("/c;/C;noperm;x", "a v1 item has 3 fields separated by ';' (mount point;alias;options), not 4"),
        ("/c;/C;noperm", "options carry no username"),
        ("/c\n/C\nu\np\nusername=v", "a v2 item carries username and password in their own lines, not in options"),
        ("/c\n/C\nu\np\npassword=q", "a v2 item carries username and password in their own lines, not in options"),
        # options
        (V1 + "," + ",".join(["nobrl"] * 31), "more than 32 options"),
        (V1 + ",nobrl,NOBRL", "option 'nobrl' is given twice"),
        (V1 + ",user=v", "option 'user' is given twice"),
        (V1 + ",pass=q", "option 'pass' is given twice"),
        (V1 + ",domain=a,workgroup=b", "option 'workgroup' is given twice"),
        (V1 + ",secret,,word", NOT_SHOWN + " is not allowed (allowed: " + ALLOWED + ")"),
        (V1 + ",setuids", "option 'setuids' is not allowed (allowed: " + ALLOWED + ")"),
        (V1 + ",credentials=/x", "option 'credentials' is not allowed (allowed: " + ALLOWED + ")"),
        ("/c;/C;username=u,password=p\rq", "password contains a line break or NUL"),
        ("/c;/C;username=u,password=" + "x" * 513, "password is longer than 512 bytes (each ',' counts twice: "
         "mount.cifs doubles it)"),
        ("/c\n/C\nu\n" + "x" * 513 + "\n", "password is longer than 512 bytes (each ',' counts twice: "
         "mount.cifs doubles it)"),
        (V1 + ",iocharset=a\rb", "option 'iocharset' contains a line break or NUL"),
        ("/c;/C;username=me password=x", "option 'username' has a password inside it; separate options with ','"),
        (V1 + ",noperm=1", "option 'noperm' takes no value"),
        (V1 + ",vers=1.0", "option 'vers': this version is not allowed (allowed: 2.0, 2.1, 3, 3.0, 3.0.2, 3.02, "
         "3.1.1, 3.11, default)"),
        (V1 + ",iocharset=utf 8", "option 'iocharset' has forbidden characters"),
        (V1 + ",cache=fast", "option 'cache': this value is not allowed (allowed: strict, loose, none)"),
        (V1 + ",sec=ntlm", "option 'sec': this value is not allowed (allowed: krb5, krb5i, ntlmssp, ntlmsspi, "
         "ntlmv2, ntlmv2i)"),
        (V1 + ",ro,rw", "options 'ro' and 'rw' contradict each other; give one of them"),
        (V1 + ",soft,hard", "options 'hard' and 'soft' contradict each other; give one of them"),
        (V1 + ",noserverino,serverino", "options 'serverino' and 'noserverino' contradict each other; "
         "give one of them"),
        # numbers: the digits expected, and the bounds
        (V1 + ",uid=+5", "option 'uid' is not a number: write decimal digits only (0-9), e.g. 1000"),
        (V1 + ",gid=", "option 'gid' is not a number: write decimal digits only (0-9), e.g. 1000"),
        (V1 + ",file_mode=0o777", "option 'file_mode' is not a number: write octal digits only (0-7), e.g. 0755"),
        (V1 + ",dir_mode=8", "option 'dir_mode' is not a number: write octal digits only (0-7), e.g. 0755"),
        (V1 + ",uid=65536", "option 'uid' must be between 0 and 65535"),
        (V1 + ",file_mode=1000", "option 'file_mode' must be between 0 and 777"),
        (V1 + ",actimeo=3601", "option 'actimeo' must be between 0 and 3600"),
        (V1 + ",actimeo=" + "9" * 13, "option 'actimeo' must be between 0 and 3600"),
        # accounts
        ("/c;/C;username=a\\b\\c,password=p", "option 'username' has more than one '\\' (write DOMAIN\\user)"),
        ("/c\n/C\na\\b\\c\np\n", "username has more than one '\\' (write DOMAIN\\user)"),
        ("/c;/C;username=,password=p", "option 'username' is empty, too long or has forbidden characters"),
        ("/c\n/C\nu:v\np\n", "username is empty, too long or has forbidden characters"),
        ("/c;/C;username=" + "u" * 257 + ",password=p", "option 'username' is longer than 256 bytes"),
        ("/c\n/C\n" + "é" * 129 + "\np\n", "username is longer than 256 bytes"),
        ("/c;/C;username=u%pw,password=p", "option 'username' must not carry a password or domain (%, /); "
         "write a domain as DOMAIN\\user or domain="),
        ("/c\n/C\ncorp/u\np\n", "username must not carry a password or domain (%, /); "
         "write a domain as DOMAIN\\user or domain="),
        (V1 + ",domain=-x", "option 'domain' has forbidden characters or is empty (allowed: letters, digits, "
         "'.', '_', '-')"),
        (V1 + ",domain=" + "d" * 256, "option 'domain' is longer than 255 bytes"),
        ("/c;/C;username=a b\\u,password=p", "the domain in option 'username' (DOMAIN\\user) has forbidden "
         "characters or is empty (allowed: letters, digits, '.', '_', '-')"),
        ("/c\n/C\n\\u\np\n", "the domain in username (DOMAIN\\user) has forbidden characters or is empty "
         "(allowed: letters, digits, '.', '_', '-')"),
        ("/c;/C;username=A\\u,password=p,domain=B", "the domain in username (DOMAIN\\user) and option 'domain' "
         "differ; give one of them"),
        ("/c\n/C\nA\\u\np\ndomain=B", "the domain in username (DOMAIN\\user) and option 'domain' differ; "
         "give one of them"),
    ],
)
def test_a_refused_item_gets_the_problem_its_rule_names(value, expected):
    assert problem(value) == expected


WIDE = Limits(pattern=r"^/[A-Za-z0-9/._-]*$")


@pytest.mark.parametrize(
    "mountpoint, expected",
    [
        ("", "mount point is empty"),
        ("/" + "a" * 64, "mount point is longer than 64 characters"),
        ("/a b", "mount point contains a forbidden character"),
        ("/a\u200bb", "mount point contains a forbidden character"),
        ("/", "mount point '/' is a system directory"),
        ("c", "mount point 'c' is not a plain absolute path"),
        ("/a/../b", "mount point '/a/../b' is not a plain absolute path"),
        ("/a/", "mount point '/a/' is not a plain absolute path"),
        ("/a//b", "mount point '/a//b' is not a plain absolute path"),
        ("/a/./b", "mount point '/a/./b' is not a plain absolute path"),
        ("/etc", "mount point '/etc' is a system directory"),
        ("/usr/local", "mount point '/usr/local' is a system directory"),
        ("/Database", "mount point '/Database' is a system directory"),
        ("/D", "mount point '/D' is a system directory"),  # the configured extra
        ("/D/x", "mount point '/D/x' is a system directory"),
        # Not shown when the path is not plain text (it reached the item from
        # the host; only [A-Za-z0-9._/-] is echoed).
        ("/é", "mount point is not allowed "
         "(allowed: ^/[A-Za-z0-9/._-]*$)"),
        ("/a:b", "mount point is not allowed (allowed: ^/[A-Za-z0-9/._-]*$)"),
        ("/a+b", "mount point is not allowed (allowed: ^/[A-Za-z0-9/._-]*$)"),
    ],
)
def test_a_refused_mount_point_gets_the_problem_its_rule_names(mountpoint, expected):
    limits = Limits(pattern=WIDE.pattern, forbidden=("/D",))
    assert problem(f"{mountpoint};/C;username=u,password=p", limits) == expected


def test_the_alias_is_named_as_the_alias():
    assert problem("/c;/etc;username=u,password=p") == "alias '/etc' is a system directory"
    assert problem("/c;/cc;username=u,password=p") == "alias '/cc' is not allowed (allowed: ^/[A-Za-z]$)"
    assert problem("/c\n/C \nu\np\n") == "alias contains a forbidden character"


def test_a_path_of_64_characters_is_the_longest():
    path = "/" + "a" * 63
    spec = parse_mount(f"{path};;username=u,password=p", WIDE)
    assert (spec.mountpoint, spec.alias) == (path, path)


@pytest.mark.parametrize("letter", ["a", "c", "x", "z", "A", "C", "X", "Z"])
def test_every_drive_letter_is_a_mount_point_by_default(letter):
    spec = parse_mount(f"/{letter};/{letter.swapcase()};username=u,password=p")
    assert (spec.mountpoint, spec.alias, spec.share) == (f"/{letter}", f"/{letter.swapcase()}", letter)
