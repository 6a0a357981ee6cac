"""Issue 17: accounts (DOMAIN\\user, user@domain, domain=) and options
passed in the one form they are checked in; one test per rule, the
expected values written from the README's rules."""

import pytest

from agent.shares.items import CIFSMOUNT, ShareError, credentials_file, parse_mount, redact_item

V1 = "/c;/C;{account},password=pw,noperm"
V2 = "/c\n/C\n{user}\npw\n{options}"


def refused(value):
    with pytest.raises(ShareError) as info:
        parse_mount(value)
    return str(info.value)


# --- accounts --------------------------------------------------------------

@pytest.mark.parametrize("value, username, domain", [
    (V1.format(account="username=CORP\\bob"), "bob", "CORP"),
    (V1.format(account="user=CORP\\bob"), "bob", "CORP"),
    (V2.format(user="CORP\\bob", options="noperm"), "bob", "CORP"),
    (V1.format(account="username=bob,domain=CORP"), "bob", "CORP"),
    (V2.format(user="bob", options="noperm,domain=CORP"), "bob", "CORP"),
    # A UPN (Azure AD too) stays whole, with no domain.
    (V1.format(account="username=bob@corp.example.com"), "bob@corp.example.com", None),
    (V2.format(user="bob.smith@contoso.onmicrosoft.com", options=""), "bob.smith@contoso.onmicrosoft.com", None),
    # The same domain twice, in another case: no contradiction; DOMAIN\user's
    # spelling is kept.
    (V1.format(account="username=CORP\\bob,domain=corp"), "bob", "CORP"),
    (V2.format(user="ÉQUIPE\\bob", options="domain=équipe"), "bob", "ÉQUIPE"),
    # Spaces in user names; non-ASCII domains, NetBIOS and DNS style.
    (V1.format(account="username=John Smith"), "John Smith", None),
    (V2.format(user="ÉQUIPE\\Jean Dupont", options=""), "Jean Dupont", "ÉQUIPE"),
    (V2.format(user="équipe.example.fr\\jean", options=""), "jean", "équipe.example.fr"),
    (V1.format(account="username=jean,domain=ÉQUIPE"), "jean", "ÉQUIPE"),
])
def test_accounts_are_split_as_mount_cifs_wants_them(value, username, domain):
    spec = parse_mount(value)
    assert (spec.username, spec.domain, spec.password) == (username, domain, "pw")
    text = f"username={username}\npassword=pw\n" + (f"domain={domain}\n" if domain else "")
    assert credentials_file(spec) == text


@pytest.mark.parametrize("value", [
    V1.format(account="username=CORP\\bob,domain=OTHER"),
    V1.format(account="domain=OTHER,username=CORP\\bob"),
    V2.format(user="CORP\\bob", options="domain=OTHER"),
    V2.format(user="ÉQUIPE\\bob", options="domain=EQUIPE"),  # É is not E
])
def test_a_domain_prefix_and_another_domain_option_contradict(value):
    problem = refused(value)
    assert "username (DOMAIN\\user)" in problem and "option 'domain'" in problem and "differ" in problem


@pytest.mark.parametrize("value, message", [
    (V1.format(account="username=CORP\\"), "option 'username' is empty"),
    (V2.format(user="\\bob", options=""), "the domain in username (DOMAIN\\user) has forbidden characters"),
    (V2.format(user="A\\B\\bob", options=""), "username has more than one '\\'"),
    (V2.format(user="CO RP\\bob", options=""), "the domain in username (DOMAIN\\user) has forbidden characters"),
    (V1.format(account="username=CORP/bob"), "must not carry a password or domain"),
    (V1.format(account="username=bob%pw"), "must not carry a password or domain"),
    (V1.format(account="username=bob,dom=A,domain=A"), "given twice"),
    (V1.format(account="user=bob,username=bob"), "given twice"),
])
def test_bad_accounts_are_refused_by_name(value, message):
    assert message in refused(value)


def test_lengths_are_bytes_of_utf8_as_mount_cifs_counts_them():
    # User name: 256 bytes (MAX_USERNAME_SIZE; 257 would be cut by strlcpy).
    assert parse_mount(V2.format(user="é" * 128, options="")).username == "é" * 128
    assert "longer than 256 bytes" in refused(V2.format(user="é" * 128 + "x", options=""))
    assert parse_mount(V2.format(user="D\\" + "u" * 256, options="")).username == "u" * 256
    assert "longer than 256 bytes" in refused(V2.format(user="D\\" + "u" * 257, options=""))
    # Domain: 255 bytes (the kernel refuses 256).
    assert parse_mount(V2.format(user="É" * 127 + "x\\u", options="")).domain == "É" * 127 + "x"
    assert "longer than 255 bytes" in refused(V2.format(user="É" * 128 + "\\u", options=""))
    assert "longer than 255 bytes" in refused(V1.format(account="username=u,domain=" + "É" * 128))
    # Password: 512 bytes once mount.cifs has doubled each ','.
    assert parse_mount("/c\n/C\nu\n" + "€" * 170 + "pp\n").password == "€" * 170 + "pp"
    assert "longer than 512 bytes" in refused("/c\n/C\nu\n" + "€" * 170 + "ppp\n")
    assert parse_mount("/c\n/C\nu\n" + "," * 256 + "\n").password == "," * 256
    assert "longer than 512 bytes" in refused("/c\n/C\nu\n" + "," * 256 + "p\n")
    assert "longer than 512 bytes" in refused("/c;/C;username=u,password=" + ",," * 256 + "p")


# --- options: what is checked is what is passed ------------------------------

@pytest.mark.parametrize("written, passed", [
    ("VERS=3.0", "vers=3.0"), ("NoPerm", "noperm"), ("vers=DEFAULT", "vers=default"),
    ("sec=NTLMSSP", "sec=ntlmssp"), ("Sec=Krb5i", "sec=krb5i"), ("cache=Strict", "cache=strict"),
    ("iocharset=UTF8", "iocharset=utf8"),
    ("uid=1000", "uid=1000"), ("uid=0001000", "uid=1000"), ("gid=0", "gid=0"), ("gid=000", "gid=0"),
    ("actimeo=0060", "actimeo=60"), ("UID=7", "uid=7"),
    ("file_mode=0755", "file_mode=0755"), ("file_mode=755", "file_mode=0755"), ("dir_mode=7", "dir_mode=0007"),
    ("dir_mode=0", "dir_mode=0000"), ("dir_mode=00000777", "dir_mode=0777"),
])
def test_options_are_passed_in_the_form_they_are_checked_in(written, passed):
    for value in (f"/c;/C;username=u,password=p,{written}", f"/c\n/C\nu\np\n{written}"):
        assert parse_mount(value).options == (passed,)


@pytest.mark.parametrize("option", ["uid", "gid", "actimeo"])
@pytest.mark.parametrize("bad", ["1_000", "+5", " 7", "7 ", "\u0663", "\uff11", "0x10", "-1", "", "1e3", "1.0"])
def test_decimal_numbers_are_digits_only(option, bad):
    problem = refused(f"/c;/C;username=u,password=p,{option}={bad}")
    assert f"option {option!r} is not a number: write decimal digits only (0-9)" in problem


@pytest.mark.parametrize("option", ["file_mode", "dir_mode"])
@pytest.mark.parametrize("bad", ["0o777", "0x1ff", "+755", " 755", "8", "0758", "\u0667", "", "1_0"])
def test_modes_are_octal_digits_only(option, bad):
    problem = refused(f"/c;/C;username=u,password=p,{option}={bad}")
    assert f"option {option!r} is not a number: write octal digits only (0-7)" in problem


@pytest.mark.parametrize("value, message", [
    ("uid=65536", "option 'uid' must be between 0 and 65535"),
    ("uid=" + "0" * 5000 + "1", None),  # leading zeros, however many
    ("uid=" + "9" * 5000, "option 'uid' must be between 0 and 65535"),
    ("actimeo=3601", "option 'actimeo' must be between 0 and 3600"),
    ("file_mode=1000", "option 'file_mode' must be between 0 and 777"),
])
def test_number_ranges(value, message):
    item = f"/c;/C;username=u,password=p,{value}"
    if message is None:
        assert parse_mount(item).options == ("uid=1",)
    else:
        assert message in refused(item)


@pytest.mark.parametrize("a, b", [("ro", "rw"), ("hard", "soft"), ("serverino", "noserverino")])
def test_contradicting_flags_are_refused_naming_both(a, b):
    for first, second in ((a, b), (b, a), (a.upper(), b)):
        problem = refused(f"/c;/C;username=u,password=p,{first},nobrl,{second}")
        assert f"options {a!r} and {b!r} contradict each other" in problem


def test_non_ascii_look_alikes_are_not_lowered_into_allowed_values():
    # "\u212a" (KELVIN SIGN) lowers to "k": it must not become sec=krb5.
    assert "option 'sec'" in refused("/c;/C;username=u,password=p,sec=\u212arb5")


# --- messages naming the real cause ------------------------------------------

@pytest.mark.parametrize("value", [
    "/c\r\n/C\r\nu\r\nSeCrEt\r\nnoperm",
    "/c\r\n/C\r\nu\r\nSeCrEt\r\n",
    "/c\n/C\nu\r\nSeCrEt\nnoperm",
])
def test_a_v2_item_with_crlf_line_ends_is_refused_as_such(value):
    problem = refused(value)
    assert "Windows line ends (CRLF)" in problem and "username" not in problem
    assert "SeCrEt" not in problem


@pytest.mark.parametrize("value", [
    "/c;/C;username=u,password=Se;CrEt,noperm",
    "/c;/C;username=u,PASS=Se;Cr;Et",
    "/c;/C;username=u,password=Se,,;CrEt",
    "/c;/C;username=u,password=Se,Cr;Et,noperm",  # an undoubled comma too
    "/c;/C;noperm,password=;SeCrEt,username=u",
])
def test_a_semicolon_in_a_v1_password_is_named_without_the_password(value):
    problem = refused(value)
    assert "a ';' in a v1 password cannot be sent in the v1 format" in problem and "v2 format" in problem
    for part in ("Se", "Cr", "Et", "SeCrEt"):
        assert part not in problem
    shown = redact_item(CIFSMOUNT, value)
    assert not any(part in shown for part in ("Se", "Cr", "Et")), shown


def test_a_semicolon_before_the_password_is_not_blamed_on_it():
    problem = refused("/c;/x;/C;username=u,password=SeCrEt")
    assert "a v1 item has 3 fields" in problem and "password" not in problem
