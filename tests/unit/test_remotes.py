"""Remotes strings: ``vnc://host:5900+15900,...?password=X``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gymlab.client.remotes import (
    EXPECTED_FORM,
    Remote,
    format_remotes,
    parse_remote,
    parse_remotes,
)


def test_two_remotes_with_password() -> None:
    spec = parse_remotes("vnc://host:5900+15900,host2:5901+15901?password=X")
    assert spec.remotes == (Remote("host", 5900, 15900), Remote("host2", 5901, 15901))
    assert spec.password == "X"


def test_password_never_in_repr_or_str() -> None:
    spec = parse_remotes("vnc://h:1+2?password=s3cr3t-pw")
    assert "s3cr3t" not in repr(spec)
    assert "s3cr3t" not in str(spec)
    assert str(spec) == "vnc://h:1+2"


def test_rewarder_port_defaults_to_vnc_plus_10000() -> None:
    assert parse_remote("localhost:5903") == Remote("localhost", 5903, 15903)


def test_ipv6_and_list_input_and_keyword_password() -> None:
    spec = parse_remotes(["[::1]:5900+15900", "vnc://10.0.0.2:5901+15901"], password="pw")
    assert spec.remotes[0] == Remote("::1", 5900, 15900)
    assert spec.remotes[0].name == "[::1]:5900+15900"
    assert spec.password == "pw"


def test_percent_encoded_password() -> None:
    assert parse_remotes("vnc://h:1+2?password=a%26b%3Dc").password == "a&b=c"


def test_same_password_twice_is_fine_but_conflict_is_not() -> None:
    assert parse_remotes("vnc://h:1+2?password=a", password="a").password == "a"
    with pytest.raises(ValueError, match="two different passwords"):
        parse_remotes("vnc://h:1+2?password=a", password="b")


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("vnc://host:59x00+15900", "host:59x00"),
        ("vnc://host+15900", "host"),
        ("vnc://host:5900+", "host:5900+"),
        ("vnc://host:0+15900", "out of range"),
        ("vnc://host:5900+70000", "70000"),
        ("http://host:5900+15900", "http://"),
        ("vnc://", "empty remote"),
        ("vnc://a:1+2,,b:3+4", "empty remote"),
        ("vnc://a:1+2?pasword=x", "pasword"),
        ("vnc://a:1+2?password=x&password=y", "more than once"),
    ],
)
def test_bad_parts_are_named(spec: str, names: str) -> None:
    with pytest.raises(ValueError, match=r"expected|option|more than once") as info:
        parse_remotes(spec)
    assert names in str(info.value)


def test_error_shows_expected_form() -> None:
    with pytest.raises(ValueError) as info:
        parse_remotes("vnc://nope")
    assert EXPECTED_FORM in str(info.value)


def test_no_remotes() -> None:
    with pytest.raises(ValueError, match="no remotes"):
        parse_remotes([])


hosts = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z0-9]{1,5}){0,2}", fullmatch=True)
ports = st.integers(1, 65535)
remotes = st.builds(Remote, hosts, ports, ports)
passwords = st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s)


@given(st.lists(remotes, min_size=1, max_size=6), passwords)
def test_format_then_parse_round_trips(items: list[Remote], password: str) -> None:
    from urllib.parse import quote

    text = format_remotes(items) + "?password=" + quote(password, safe="")
    spec = parse_remotes(text)
    assert list(spec.remotes) == items
    assert spec.password == password


@given(st.text(max_size=40))
def test_garbage_raises_valueerror_or_parses(text: str) -> None:
    try:
        spec = parse_remotes(text)
    except ValueError:
        return
    assert all(0 < r.vnc_port < 65536 and 0 < r.rewarder_port < 65536 for r in spec.remotes)


def test_password_is_decoded_exactly_once() -> None:
    assert parse_remotes("vnc://h:1+2?password=%2525").password == "%25"


@pytest.mark.parametrize(
    ("entry", "loopback"),
    [
        ("127.0.0.1:5900+15900", True),
        ("127.8.9.10:5900+15900", True),
        ("localhost:5900+15900", True),
        ("[::1]:5900+15900", True),
        ("10.0.0.5:5900+15900", False),
        ("gpu01:5900+15900", False),
        ("[fe80::1]:5900+15900", False),
    ],
)
def test_a_remote_on_loopback_is_asked_for_raw_and_one_across_a_network_for_zrle(entry, loopback):
    remote = parse_remote(entry)
    assert remote.on_loopback is loopback
    assert remote.encodings[0] == ("raw" if loopback else "zrle")


def test_a_lab_splits_across_workers_without_giving_a_remote_twice() -> None:
    spec = parse_remotes(
        ",".join(f"rt{i}:{5900 + i}+{15900 + i}" for i in range(7)), password="p w"
    )
    shares = [spec.for_worker(w, 3, 2) for w in range(3)]
    assert [[r.host for r in s.remotes] for s in shares] == [
        ["rt0", "rt1"],
        ["rt2", "rt3"],
        ["rt4", "rt5"],  # rt6 is left unused
    ]
    assert {s.password for s in shares} == {"p w"}
    assert spec.for_worker(1, 7).remotes == (spec.remotes[1],)  # one env per worker


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((0, 4, 2), r"4 workers x 2 envs need 8 remotes, the remotes string has 7"),
        ((3, 3, 1), r"worker must be in 0\.\.2, got 3"),
        ((-1, 3, 1), r"worker must be in 0\.\.2, got -1"),
        ((0, 0, 1), r"num_workers must be a positive integer, got 0"),
        ((0, 2, 0), r"envs_per_worker must be a positive integer, got 0"),
        ((0, 2, True), r"envs_per_worker must be a positive integer, got True"),
    ],
)
def test_asking_for_more_than_the_lab_has_is_one_line(
    args: tuple[int, int, int], error: str
) -> None:
    spec = parse_remotes(",".join(f"rt{i}:{5900 + i}" for i in range(7)))
    with pytest.raises(ValueError, match=rf"^{error}$"):
        spec.for_worker(*args)
