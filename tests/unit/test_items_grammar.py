"""cifsmount items generated from their grammar: valid items with hostile
parts (passwords full of , = ; space \\ ' ! $ %, unicode), and the same with
one forbidden part put in. The oracle is the README's "Drive sharing"
rules: a valid item is accepted with exactly the parts written; an item
with one forbidden part is refused with a problem naming that part; a
password never shows in a redacted value (raw or in v1's ",," form) or in
a problem.
"""

import string

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from agent.shares.items import CIFSMOUNT, Limits, ShareError, parse_mount, redact_item
from tests.unit.reach import shares

LIMITS = Limits()
MARK = "Pw\u00a7"  # starts every password: what a leak would show
letters = st.sampled_from(string.ascii_letters)
hostile_chars = st.sampled_from(list(",=; \\'!$%\"#&*?`()[]{}<>|~^@:") + ["é", "ß", "€", "日", "\U0001f600"])
word = st.text(st.sampled_from(string.ascii_letters + string.digits + "._-"), min_size=1, max_size=8)


@st.composite
def passwords(draw, v1):
    parts = draw(st.lists(st.one_of(word, hostile_chars, st.sampled_from([",", ",,", "=", ", "])), max_size=12))
    text = MARK + "".join(parts)
    if v1:
        text = text.replace(";", ":")  # v1's fields are separated by ';'
    return text


@st.composite
def usernames(draw, v1):
    # Windows refuses " / \ [ ] : ; | = , + * ? < > in a user name: so does the agent.
    text = draw(word) + "".join(draw(st.lists(st.sampled_from(["'", "!", "$", " ", "é", "@", "."]),
                                              max_size=3)))
    return text.replace(";", "") if v1 else text


# Allowed options and their values, written from the allow-list in the README.
VALID_OPTIONS = {
    "noperm": st.just(None), "nobrl": st.just(None), "mfsymlinks": st.just(None), "nounix": st.just(None),
    "noserverino": st.just(None), "serverino": st.just(None), "nocase": st.just(None), "ro": st.just(None),
    "rw": st.just(None), "hard": st.just(None), "soft": st.just(None), "nodfs": st.just(None),
    "vers": st.sampled_from(["2.0", "2.1", "3.0", "3.02", "3.1.1"]),
    "iocharset": st.sampled_from(["utf8", "iso8859-1", "cp437"]),
    "uid": st.integers(0, 65535).map(str), "gid": st.integers(0, 65535).map(str),
    "file_mode": st.integers(0, 0o777).map(lambda n: f"0{n:o}"),
    "dir_mode": st.integers(0, 0o777).map(lambda n: f"{n:o}"),
    "cache": st.sampled_from(["strict", "loose", "none"]),
    "actimeo": st.integers(0, 3600).map(str),
    "sec": st.sampled_from(["ntlmssp", "ntlmsspi", "ntlmv2", "ntlmv2i", "krb5", "krb5i"]),
}
# One forbidden part each, with the name the problem must carry.
FORBIDDEN_OPTIONS = [
    ("credentials=/etc/shadow", "credentials"), ("setuids", "setuids"), ("exec", "exec"), ("suid", "suid"),
    ("dev", "dev"), ("sec=none", "sec"), ("sec=ntlm", "sec"), ("sec=krb5x", "sec"), ("vers=1.0", "vers"),
    ("vers=3.2", "vers"), ("file_mode=4755", "file_mode"), ("dir_mode=1777", "dir_mode"),
    ("file_mode=0800", "file_mode"), ("uid=65536", "uid"), ("gid=-1", "gid"), ("actimeo=3601", "actimeo"),
    ("cache=fast", "cache"), ("iocharset=../x", "iocharset"), ("noperm=1", "noperm"), ("port=4455", "port"),
    ("ip=6.6.6.6", "ip"), ("unc=//evil/x", "unc"), ("rsize=1", "rsize"), ("forceuid", "forceuid"),
]
SYSTEM_PATHS = ["/", "/etc", "/proc", "/sys", "/dev", "/run", "/var", "/usr", "/usr/bin", "/c/../etc", "/c/..",
                "/Database", "/tmp", "c", "/cc", "/c/", "//c"]


@st.composite
def valid_items(draw):
    """(value, what the rules say it holds)"""
    v1 = draw(st.booleans())
    mp = "/" + draw(letters)
    alias = draw(st.sampled_from(["", "/" + draw(letters)]))
    username = draw(usernames(v1))
    password = draw(passwords(v1))
    domain = draw(st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)))
    names = draw(st.lists(st.sampled_from(sorted(VALID_OPTIONS)), unique=True, max_size=8))
    options = []
    for name in names:
        value = draw(VALID_OPTIONS[name])
        options.append(name if value is None else f"{name}={value}")
    if v1:
        # Option names in any case ("Password=", "PASS=": mount.cifs takes them).
        pw_name = draw(st.sampled_from(["password", "pass"]))
        pw_name = "".join(c.upper() if draw(st.booleans()) else c for c in pw_name)
        creds = [f"username={username}", f"{pw_name}=" + password.replace(",", ",,")]
        if domain:
            creds.append(f"domain={domain}")
        parts = options + creds
        order = draw(st.permutations(range(len(parts))))
        value = f"{mp};{alias};" + ",".join(parts[i] for i in order)
        kept = tuple(parts[i] for i in order if parts[i] in options)
    else:
        opts = options + ([f"domain={domain}"] if domain else [])
        value = "\n".join([mp, alias, username, password, ",".join(opts)])
        kept = tuple(options)
    event("v1" if v1 else "v2")
    return value, dict(v1=v1, mountpoint=mp, alias=alias or mp, username=username, password=password,
                       domain=domain, options=kept)


@st.composite
def hostile_items(draw):
    """A valid item with one forbidden part put in: (value, the part's name, password)."""
    value, want = draw(valid_items())
    v1 = want["v1"]
    kind = draw(st.sampled_from(["option", "repeat", "mountpoint", "alias", "username", "nul",
                                 "too many", "password in options"]))
    if kind == "password in options" and v1:
        kind = "repeat"
    event(f"hostile {kind}")
    if kind == "option":
        text, name = draw(st.sampled_from(FORBIDDEN_OPTIONS))
    elif kind == "repeat":
        name = draw(st.sampled_from(sorted(VALID_OPTIONS)))
        text = name if draw(VALID_OPTIONS[name]) is None else f"{name}={draw(VALID_OPTIONS[name])}"
        text = f"{text},{text}"
    elif kind == "too many":
        text, name = ",".join(["nobrl"] * 33), "options"
    elif kind == "password in options":  # v2 carries it in its own line
        text, name = draw(st.sampled_from(["password=", "Pass=", "PASSWORD="])) + want["password"].replace(
            ",", ",,"), "password"
    if kind in ("option", "repeat", "too many", "password in options"):
        if v1:
            value = value + "," + text
        else:
            fields = value.split("\n")
            fields[4] = f"{fields[4]},{text}" if fields[4] else text
            value = "\n".join(fields)
        return value, name, want["password"]
    sep = ";" if v1 else "\n"
    fields = value.split(sep, 2) if v1 else value.split("\n")
    if kind == "mountpoint":
        fields[0], name = draw(st.sampled_from(SYSTEM_PATHS)), "mount point"
    elif kind == "alias":
        fields[1], name = draw(st.sampled_from(SYSTEM_PATHS[1:])), "alias"
    elif kind == "username":
        bad = want["username"] + draw(st.sampled_from(["%pw", "/x", "\\x"]))
        if v1:
            fields[2] = fields[2].replace(f"username={want['username']}", f"username={bad}", 1)
        else:
            fields[2] = bad
        name = "username"
    else:
        where = draw(st.integers(0, len(fields) - 1))
        fields[where] = fields[where] + "\0"
        name = "NUL"
    return sep.join(fields), name, want["password"]


@given(valid_items())
def test_valid_items_are_accepted_with_exactly_their_parts(case):
    value, want = case
    spec = parse_mount(value, LIMITS)
    assert (spec.mountpoint, spec.alias) == (want["mountpoint"], want["alias"])
    assert (spec.username, spec.password, spec.domain) == (want["username"], want["password"], want["domain"])
    assert spec.options == want["options"]
    assert spec.share == want["mountpoint"][1:]


@given(hostile_items())
def test_an_item_with_one_forbidden_part_is_refused_naming_it(case):
    value, name, password = case
    with pytest.raises(ShareError) as info:
        parse_mount(value, LIMITS)
    problem = str(info.value)
    if name != "NUL":
        assert name in problem, (value, problem)
    assert MARK not in problem


@given(st.one_of(valid_items().map(lambda c: (c[0], c[1]["password"])),
                 hostile_items().map(lambda c: (c[0], c[2]))))
def test_a_redacted_item_holds_no_password_in_any_form(case):
    value, password = case
    shown = redact_item(CIFSMOUNT, value)
    assert MARK not in shown, shown
    assert password not in shown and password.replace(",", ",,") not in shown


@pytest.mark.reach
def test_the_item_grammar_reaches_acceptance_and_every_hostile_part():
    def accepted(case):
        try:
            parse_mount(case[0], LIMITS)
            return True
        except ShareError:
            return False

    reached = shares(valid_items(), {
        "v1": lambda c: c[1]["v1"],
        "v2": lambda c: not c[1]["v1"],
        "options": lambda c: len(c[1]["options"]) >= 2,
        "comma in password": lambda c: "," in c[1]["password"],
        "domain": lambda c: c[1]["domain"] is not None,
        "accepted": accepted,
    })
    assert reached["accepted"] == 1.0, reached  # every generated valid item
    assert reached["v1"] >= 0.3 and reached["v2"] >= 0.3, reached
    assert min(reached["options"], reached["comma in password"], reached["domain"]) >= 0.3, reached
    # Each kind of hostile part is put in often enough to matter.
    hostile = shares(hostile_items(), {kind: (lambda k: lambda c: c[1] == k)(kind)
                                       for kind in ("mount point", "alias", "username", "NUL", "options")})
    assert min(hostile.values()) >= 0.02, hostile  # each kind at least 4 times in 200
