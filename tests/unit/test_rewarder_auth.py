"""Rewarder Basic credentials and the failed-attempt limiter."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from gymlab.rewarder.auth import (
    FailedAttemptLimiter,
    basic_authorization,
    check_basic_authorization,
)


def test_header_carries_password_in_user_field() -> None:
    header = basic_authorization("s3cret")
    assert header == "Basic " + base64.b64encode(b"s3cret:").decode()


# surrogates cannot travel in an HTTP header (they have no UTF-8 form)
PASSWORDS = st.text(
    alphabet=st.characters(blacklist_characters=":", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=40,
)


@given(PASSWORDS)
def test_roundtrip(password: str) -> None:
    assert check_basic_authorization(basic_authorization(password), password)
    assert not check_basic_authorization(basic_authorization(password + "x"), password)


def test_rejects_malformed_headers() -> None:
    wrong = "Basic " + base64.b64encode(b"no:").decode()
    for header in (None, "", "Bearer abc", "Basic !!!", wrong):
        assert not check_basic_authorization(header, "pw")
    # a bare password without the colon is accepted (lenient clients)
    assert check_basic_authorization("basic " + base64.b64encode(b"pw").decode(), "pw")


def test_limiter_lets_free_failures_through_then_holds_each_later_one() -> None:
    limiter = FailedAttemptLimiter(free_failures=3, window=10.0, hold=2.0)
    for i in range(3):
        assert limiter.refusal("1.2.3.4", float(i)) is None
        assert limiter.record_failure("1.2.3.4", float(i)) == 0.0
    assert limiter.record_failure("1.2.3.4", 3.0) == 2.0  # the fourth within the window
    assert limiter.refusal("1.2.3.4", 3.5) == "too many failed attempts from 1.2.3.4; retry in 2 s"
    assert limiter.refusal("5.6.7.8", 3.5) is None  # other addresses are not affected
    # the hold ends after `hold` seconds, however many failures came before
    assert limiter.retry_after("1.2.3.4", 4.5) == 0.5
    assert limiter.refusal("1.2.3.4", 5.0) is None


def test_limiter_holds_a_guesser_to_one_guess_per_hold() -> None:
    limiter = FailedAttemptLimiter(free_failures=5, window=60.0, hold=2.0)
    guesses, now = 0, 0.0
    while now < 60.0:  # a guesser retrying every 10 ms for a minute
        if limiter.refusal("9.9.9.9", now) is None:
            limiter.record_failure("9.9.9.9", now)
            guesses += 1
        now += 0.01
    assert guesses <= 5 + 60.0 / 2.0 + 1
    assert guesses >= 25  # and the owner, behind the same address, waits at most 2 s


def test_limiter_memory_is_bounded() -> None:
    limiter = FailedAttemptLimiter(free_failures=2, window=100.0, max_peers=8)
    for i in range(1000):
        limiter.record_failure(f"10.0.{i // 256}.{i % 256}", 1.0)
    assert len(limiter) == 8
