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


@given(st.text(alphabet=st.characters(blacklist_characters=":"), min_size=1, max_size=40))
def test_roundtrip(password: str) -> None:
    assert check_basic_authorization(basic_authorization(password), password)
    assert not check_basic_authorization(basic_authorization(password + "x"), password)


def test_rejects_malformed_headers() -> None:
    wrong = "Basic " + base64.b64encode(b"no:").decode()
    for header in (None, "", "Bearer abc", "Basic !!!", wrong):
        assert not check_basic_authorization(header, "pw")
    # a bare password without the colon is accepted (lenient clients)
    assert check_basic_authorization("basic " + base64.b64encode(b"pw").decode(), "pw")


def test_limiter_blocks_after_max_failures_and_forgives_later() -> None:
    limiter = FailedAttemptLimiter(max_failures=3, window=10.0)
    for i in range(3):
        assert not limiter.is_blocked("1.2.3.4", float(i))
        limiter.record_failure("1.2.3.4", float(i))
    assert limiter.is_blocked("1.2.3.4", 3.0)
    assert not limiter.is_blocked("5.6.7.8", 3.0)
    assert not limiter.is_blocked("1.2.3.4", 10.5)  # the first failure aged out


def test_limiter_memory_is_bounded() -> None:
    limiter = FailedAttemptLimiter(max_failures=2, window=100.0, max_peers=8)
    for i in range(1000):
        limiter.record_failure(f"10.0.{i // 256}.{i % 256}", 1.0)
    assert len(limiter) == 8
