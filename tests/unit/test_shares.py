from hypothesis import given
from hypothesis import strategies as st

from agent.shares.items import redact_item


def test_v1_password_is_hidden():
    assert redact_item("cifsmount", "/c;/C;username=u,password=s3cret,noperm") == "/c;/C;username=u,password=***,noperm"


def test_v1_password_first_and_escaped_commas():
    assert redact_item("cifsmount", "/c;/C;password=a,,b,noperm") == "/c;/C;password=***,noperm"


def test_v2_password_field_is_hidden():
    assert redact_item("cifsmount", "/c\n/C\nu\np,w=d\nnoperm") == "/c\n/C\nu\n***\nnoperm"


def test_other_items_are_untouched():
    assert redact_item("note", "password=x") == "password=x"


@given(st.text(alphabet=st.characters(blacklist_characters=",\n;\0"), min_size=1))
def test_v1_password_never_survives(password):
    value = f"/c;/C;username=u,password={password},noperm"
    assert redact_item("cifsmount", value) == "/c;/C;username=u,password=***,noperm"


@given(st.text(alphabet=st.characters(blacklist_characters="\n\0"), min_size=1))
def test_v2_password_never_survives(password):
    value = f"/c\n/C\nu\n{password}\nnoperm"
    assert redact_item("cifsmount", value) == "/c\n/C\nu\n***\nnoperm"
