"""``_redact``: masking the key in server text, and stripping frames from chained exceptions."""

from __future__ import annotations

import sys

import pytest

import dialnexa_async as dnx
from dialnexa_async._redact import MASK, Redactor, detach

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup

KEY = "key_abc:s3cr3t-value"
SECRET = "s3cr3t-value"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Bearer {KEY}", f"Bearer {MASK}"),
        (f"token={SECRET}&x=1", f"token={MASK}&x=1"),
        (f"{KEY} and {SECRET}", f"{MASK} and {MASK}"),
        ("key_abc alone is an id, not a secret", "key_abc alone is an id, not a secret"),
    ],
    ids=["whole-key", "secret-part", "both", "id-only"],
)
def test_text_masks_the_whole_key_and_its_secret_part(text: str, expected: str) -> None:
    """The whole key and, alone, the part after its first colon are masked; the id is not."""
    assert Redactor(KEY).text(text) == expected


def test_text_without_the_key_is_the_same_object() -> None:
    """Text holding no part of the key comes back untouched, as the same object."""
    text = "Lead not found"
    assert Redactor(KEY).text(text) is text


def test_a_key_part_too_short_to_tell_from_words_is_not_searched() -> None:
    """A secret part under six characters would match ordinary words: only the whole key is
    masked then, and a whole key that short is not searched for either."""
    assert Redactor("key_abc:xyz").text("xyz key_abc:xyz") == f"xyz {MASK}"
    assert Redactor("k").text("Unknown key") == "Unknown key"


def test_value_masks_every_string_of_a_json_body_keys_included() -> None:
    """In a decoded JSON body every string, mapping keys too, is masked at any depth; numbers,
    booleans and null are kept."""
    body = {
        "message": [f"bad {KEY}"],
        "echo": {"headers": {"authorization": f"Bearer {KEY}", SECRET: 1}},
        "n": 2,
        "ok": True,
        "none": None,
    }
    assert Redactor(KEY).value(body) == {
        "message": [f"bad {MASK}"],
        "echo": {"headers": {"authorization": f"Bearer {MASK}", MASK: 1}},
        "n": 2,
        "ok": True,
        "none": None,
    }


def test_value_finds_a_key_that_json_escapes() -> None:
    """A key holding a quote or a backslash (visible ASCII allows both) is found in a body too."""
    key = 'key_q:se"cr\\et-x'
    assert Redactor(key).value({"echo": key}) == {"echo": MASK}


def test_value_without_the_key_is_the_same_object() -> None:
    """A body holding no part of the key is returned as is, not rebuilt."""
    body = {"statusCode": 404, "message": "Lead not found"}
    assert Redactor(KEY).value(body) is body


def test_value_too_deep_to_check_is_withheld() -> None:
    """A body nested too deep to walk is replaced by a note rather than passed on unchecked."""
    body: object = KEY
    for _ in range(sys.getrecursionlimit() + 100):
        body = [body]
    masked = Redactor(KEY).value(body)
    assert isinstance(masked, str)
    assert masked.startswith(MASK)


def test_repr_hides_the_key() -> None:
    """The redactor holds the key behind a repr that shows none of it."""
    assert SECRET not in repr(Redactor(KEY))


def test_scrub_masks_message_args_body_and_request_id() -> None:
    """Scrubbing an error masks every text it carries from the server, in place."""
    error = dnx.InternalServerError(
        f"echo {KEY}", status_code=502, body={"echo": KEY}, request_id=f"id-{SECRET}"
    )
    Redactor(KEY).scrub(error)
    assert error.message == f"echo {MASK}"
    assert error.args == (f"echo {MASK}",)
    assert error.body == {"echo": MASK}
    assert error.request_id == f"id-{MASK}"
    assert SECRET not in str(error)
    assert SECRET not in repr(error)


def test_scrub_clears_the_locals_of_the_frames_an_error_left() -> None:
    """The frames below the one that caught the error lose their locals; the catching frame,
    still running, keeps its own."""

    def raiser(echoed: str) -> None:
        raise dnx.ResponseValidationError("not a lead")

    with pytest.raises(dnx.ResponseValidationError) as caught:
        raiser(f"Bearer {KEY}")
    error = caught.value
    assert error.__traceback__ is not None
    assert error.__traceback__.tb_next is not None
    left = error.__traceback__.tb_next.tb_frame
    assert "echoed" in left.f_locals
    Redactor(KEY).scrub(error)
    assert left.f_locals == {}
    assert "error" in sys._getframe().f_locals


def test_detach_strips_frames_along_causes_and_group_members_and_cuts_contexts() -> None:
    """detach drops the traceback of an exception, of what it was raised from and of an
    exception group's members, and cuts each ``__context__`` without touching what it held."""
    try:
        raise KeyError("the caller's own")
    except KeyError as own:
        callers = own
    assert callers.__traceback__ is not None
    try:
        try:
            raise ValueError("inner")
        except ValueError as inner:
            member = RuntimeError("member")
            member.__context__ = callers
            raise ExceptionGroup("group", [member]) from inner
    except ExceptionGroup as group:
        outer = group
    outer.__context__ = callers  # as if raised while the caller handled its own exception
    assert detach(outer) is outer
    for exc in (outer, outer.__cause__, member):
        assert exc is not None
        assert exc.__traceback__ is None
        assert exc.__context__ is None
    assert callers.__traceback__ is not None
