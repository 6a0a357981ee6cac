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
from tests.unit.share_rules import CONTRADICTIONS, account, passed_number

LIMITS = Limits()
MARK = "Pw\u00a7"  # starts every password: what a leak would show
MARK2 = "Qz\u00b6"  # after the ';' put into a v1 password (its second half)
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
def users(draw, v1):
    # Windows refuses " / \\ [ ] : ; | = , + * ? < > in a user name: so does the agent.
    text = draw(word) + "".join(draw(st.lists(st.sampled_from(["'", "!", "$", " ", "é", "@", "."]),
                                              max_size=3)))
    if draw(st.booleans()):
        text += " " + draw(word)  # a space inside: "John Smith"
    return text.replace(";", "") if v1 else text


# Domains as Windows names them: NetBIOS (CORP, up to 15), DNS
# (corp.example.com), and non-ASCII in both styles.
domains = st.one_of(
    st.from_regex(r"[A-Z0-9][A-Z0-9_-]{0,14}", fullmatch=True),
    st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9-]{1,10}){1,3}", fullmatch=True),
    st.sampled_from(["ÉQUIPE", "équipe.example.fr", "ÄRZTE-NORD", "日本", "müller.de", "CORP"]),
)


def other_case(draw, text):
    return "".join(c.swapcase() if draw(st.booleans()) else c for c in text)


@st.composite
def accounts(draw, v1):
    """(username as written, domain= option or None, (username, domain) the
    rules say mount.cifs is given)."""
    user = draw(users(v1))
    form = draw(st.sampled_from(["plain", "DOMAIN\\user", "upn"]))
    event(f"account {form}")
    if form == "DOMAIN\\user":
        prefix = draw(domains)
        written = f"{prefix}\\{user}"
        # domain= may repeat the prefix's domain, in any case: no contradiction.
        option = draw(st.sampled_from([None, prefix, other_case(draw, prefix)]))
    elif form == "upn":
        written = f"{user.replace('@', '')}@{draw(domains)}"
        option = draw(st.one_of(st.none(), domains))
    else:
        written, option = user, draw(st.one_of(st.none(), domains))
    return written, option, account(written, option)


def number(name, high, base=10):
    """(as written, as the rules say it is passed): leading zeros and, for
    modes, the leading 0 optional."""
    def written(n, zeros):
        digits = f"{n:o}" if base == 8 else str(n)
        return "0" * zeros + digits, passed_number(name, n)

    return st.builds(written, st.integers(0, high), st.integers(0, 3))


def lower_value(choices):
    """A value the kernel matches case-sensitively: written in any case,
    passed in lower case."""
    return st.sampled_from(choices).flatmap(
        lambda v: st.lists(st.booleans(), min_size=len(v), max_size=len(v)).map(
            lambda ups: ("".join(c.upper() if u else c for c, u in zip(v, ups)), v)))


# Allowed options and their values, written from the allow-list in the
# README: (value as written, option as passed), value None for a flag.
VALID_OPTIONS = {
    "noperm": st.just(None), "nobrl": st.just(None), "mfsymlinks": st.just(None), "nounix": st.just(None),
    "noserverino": st.just(None), "serverino": st.just(None), "nocase": st.just(None), "ro": st.just(None),
    "rw": st.just(None), "hard": st.just(None), "soft": st.just(None), "nodfs": st.just(None),
    "vers": lower_value(["2.0", "2.1", "3.0", "3.02", "3.1.1", "default"]),
    "iocharset": lower_value(["utf8", "iso8859-1", "cp437"]),
    "uid": number("uid", 65535), "gid": number("gid", 65535),
    "file_mode": number("file_mode", 0o777, 8), "dir_mode": number("dir_mode", 0o777, 8),
    "cache": lower_value(["strict", "loose", "none"]),
    "actimeo": number("actimeo", 3600),
    "sec": lower_value(["ntlmssp", "ntlmsspi", "ntlmv2", "ntlmv2i", "krb5", "krb5i"]),
}


def option_text(draw, name):
    """(option as written, as passed): the name in any case."""
    value = draw(VALID_OPTIONS[name])
    written = other_case(draw, name) if draw(st.booleans()) else name
    if value is None:
        return written, name
    if name in ("vers", "iocharset", "cache", "sec"):
        return f"{written}={value[0]}", f"{name}={value[1]}"
    return f"{written}={value[0]}", value[1]


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
    written_user, domain, (username, want_domain) = draw(accounts(v1))
    password = draw(passwords(v1))
    names = draw(st.lists(st.sampled_from(sorted(VALID_OPTIONS)), unique=True, max_size=8))
    for a, b in CONTRADICTIONS:  # never both of a contradicting pair
        if a in names and b in names:
            names.remove(draw(st.sampled_from([a, b])))
    options, passed = [], {}
    for name in names:
        text, as_passed = option_text(draw, name)
        options.append(text)
        passed[text] = as_passed
    if v1:
        # Option names in any case ("Password=", "PASS=": mount.cifs takes them).
        pw_name = draw(st.sampled_from(["password", "pass"]))
        pw_name = "".join(c.upper() if draw(st.booleans()) else c for c in pw_name)
        creds = [f"username={written_user}", f"{pw_name}=" + password.replace(",", ",,")]
        if domain:
            creds.append(f"domain={domain}")
        parts = options + creds
        order = draw(st.permutations(range(len(parts))))
        value = f"{mp};{alias};" + ",".join(parts[i] for i in order)
        kept = tuple(passed[parts[i]] for i in order if parts[i] in passed)
    else:
        opts = options + ([f"domain={domain}"] if domain else [])
        value = "\n".join([mp, alias, written_user, password, ",".join(opts)])
        kept = tuple(passed[o] for o in options)
    event("v1" if v1 else "v2")
    return value, dict(v1=v1, mountpoint=mp, alias=alias or mp, username=username, password=password,
                       domain=want_domain, options=kept, written_user=written_user, written_options=options,
                       domain_option=domain)


# Numbers in a form other than the one the rules allow (digits only), for
# each number option; and modes written as Python would.
BAD_NUMBERS = ["1_000", "+5", " 7", "7 ", "\u0663", "0x10", "-1", "", "1e3", "\uff11"]
BAD_MODES = BAD_NUMBERS + ["0o777", "8", "0755 "]


def rebuild(draw, want, options, username=None):
    """The item of `want` again, with these options (as written) and user name."""
    alias = "" if want["alias"] == want["mountpoint"] else want["alias"]
    username = want["written_user"] if username is None else username
    if want["v1"]:
        options = options + [f"username={username}", "password=" + want["password"].replace(",", ",,")]
        return f"{want['mountpoint']};{alias};" + ",".join(draw(st.permutations(options)))
    return "\n".join([want["mountpoint"], alias, username, want["password"], ",".join(options)])


@st.composite
def hostile_items(draw):
    """A valid item with one forbidden part put in: (value, the words the
    problem must carry, password)."""
    value, want = draw(valid_items())
    v1 = want["v1"]
    kind = draw(st.sampled_from(["option", "repeat", "mountpoint", "alias", "username", "nul",
                                 "too many", "password in options", "contradiction", "number",
                                 "domain contradiction", "crlf", "semicolon in password"]))
    if kind == "password in options" and v1:
        kind = "repeat"
    if kind == "crlf" and v1:
        kind = "semicolon in password"
    if kind == "semicolon in password" and not v1:
        kind = "crlf"
    event(f"hostile {kind}")
    password = want["password"]
    if kind == "option":
        text, name = draw(st.sampled_from(FORBIDDEN_OPTIONS))
        names = [name]
    elif kind == "repeat":
        name = draw(st.sampled_from(sorted(VALID_OPTIONS)))
        text = f"{option_text(draw, name)[0]},{option_text(draw, name)[0]}"
        names = [name]
    elif kind == "too many":
        text, names = ",".join(["nobrl"] * 33), ["options"]
    elif kind == "password in options":  # v2 carries it in its own line
        text = draw(st.sampled_from(["password=", "Pass=", "PASSWORD="])) + password.replace(",", ",,")
        names = ["password"]
    elif kind in ("contradiction", "number"):
        if kind == "contradiction":
            pair = draw(st.sampled_from(CONTRADICTIONS))
            extra = [other_case(draw, n) if draw(st.booleans()) else n for n in pair]
            names = list(pair)
        else:
            name = draw(st.sampled_from(["uid", "gid", "actimeo", "file_mode", "dir_mode"]))
            extra = [f"{name}={draw(st.sampled_from(BAD_MODES if name.endswith('_mode') else BAD_NUMBERS))}"]
            names = [name, "digits only"]
        # The valid item's options, less any the new part would repeat.
        dropped = {n.lower() for n in (names if kind == "contradiction" else names[:1])}
        kept = [o for o in want["written_options"] if o.partition("=")[0].lower() not in dropped]
        domain = [f"domain={want['domain_option']}"] if want["domain_option"] else []
        return rebuild(draw, want, kept + extra + domain), names, password
    if kind in ("option", "repeat", "too many", "password in options"):
        if v1:
            value = value + "," + text
        else:
            fields = value.split("\n")
            fields[4] = f"{fields[4]},{text}" if fields[4] else text
            value = "\n".join(fields)
        return value, names, password
    if kind == "domain contradiction":
        # DOMAIN\\user and a domain= naming another domain.
        user = want["written_user"].split("\\")[-1]
        first, second = draw(st.lists(domains, min_size=2, max_size=2, unique_by=str.casefold))
        value = rebuild(draw, want, want["written_options"] + [f"domain={second}"], f"{first}\\{user}")
        return value, ["username", "domain", "differ"], password
    if kind == "crlf":
        return value.replace("\n", "\r\n"), ["Windows line ends", "CRLF"], password
    if kind == "semicolon in password":
        # v1's password, as written (commas doubled), with a ';' in it.
        written_pw = password.replace(",", ",,")
        new_pw = MARK + ";" + MARK2 + password[len(MARK):]
        assert written_pw in value
        value = value.replace(written_pw, new_pw.replace(",", ",,"), 1)
        return value, ["';' in a v1 password", "v2 format"], new_pw
    sep = ";" if v1 else "\n"
    fields = value.split(sep, 2) if v1 else value.split("\n")
    if kind == "mountpoint":
        fields[0], names = draw(st.sampled_from(SYSTEM_PATHS)), ["mount point"]
    elif kind == "alias":
        fields[1], names = draw(st.sampled_from(SYSTEM_PATHS[1:])), ["alias"]
    elif kind == "username":
        # A password or a '/' in the user name, or a DOMAIN\\user with no user
        # or a second '\\'.
        bad = want["written_user"] + draw(st.sampled_from(["%pw", "/x", "\\", "\\a\\b"]))
        if "\\" in want["written_user"] and bad.endswith("\\"):
            bad += "x"  # a second '\\' (the first already splits)
        if v1:
            fields[2] = fields[2].replace(f"username={want['written_user']}", f"username={bad}", 1)
        else:
            fields[2] = bad
        names = ["username"]
    else:
        where = draw(st.integers(0, len(fields) - 1))
        fields[where] = fields[where] + "\0"
        names = ["NUL"]
    return sep.join(fields), names, password


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
    value, names, password = case
    with pytest.raises(ShareError) as info:
        parse_mount(value, LIMITS)
    problem = str(info.value)
    for name in names:
        if name != "NUL":
            assert name in problem, (value, problem)
    assert MARK not in problem and MARK2 not in problem


@given(st.one_of(valid_items().map(lambda c: (c[0], c[1]["password"])),
                 hostile_items().map(lambda c: (c[0], c[2]))))
def test_a_redacted_item_holds_no_password_in_any_form(case):
    value, password = case
    shown = redact_item(CIFSMOUNT, value)
    assert MARK not in shown and MARK2 not in shown, shown
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
        "DOMAIN\\user": lambda c: "\\" in c[1]["written_user"],
        "UPN": lambda c: "@" in c[1]["written_user"] and "\\" not in c[1]["written_user"],
        "space in username": lambda c: " " in c[1]["username"],
        "non-ASCII domain": lambda c: not (c[1]["domain"] or "a").isascii(),
        "number canonicalised": lambda c: any(o.split("=")[0] in ("uid", "gid", "actimeo", "file_mode", "dir_mode")
                                              for o in c[1]["options"]),
        "accepted": accepted,
    })
    assert reached["accepted"] == 1.0, reached  # every generated valid item
    assert reached["v1"] >= 0.3 and reached["v2"] >= 0.3, reached
    assert min(reached["options"], reached["comma in password"], reached["domain"]) >= 0.3, reached
    assert min(reached["DOMAIN\\user"], reached["UPN"], reached["space in username"],
               reached["number canonicalised"]) >= 0.2, reached
    assert reached["non-ASCII domain"] >= 0.05, reached
    # Each kind of hostile part is put in often enough to matter.
    hostile = shares(hostile_items(), {kind: (lambda k: lambda c: k in c[1])(kind)
                                       for kind in ("mount point", "alias", "username", "NUL", "options",
                                                    "digits only", "differ", "CRLF", "v2 format")}
                     | {"contradiction": lambda c: list(c[1]) in [list(p) for p in CONTRADICTIONS]})
    assert min(hostile.values()) >= 0.02, hostile  # each kind at least 4 times in 200
