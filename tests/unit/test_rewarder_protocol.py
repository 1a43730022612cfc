"""The sans-I/O rewarder protocol: message shapes, ids, episode rules, state machines."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gymlab.rewarder import protocol as p


class FakeClock:
    """A clock the test moves by hand, so parent_runtime is exact."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def request(method: str, message_id: int | None = 1, body: object = None, **headers: object) -> str:
    hdrs: dict[str, object] = {"sent_at": 1.0, **headers}
    if message_id is not None:
        hdrs["message_id"] = message_id
    return json.dumps({"method": method, "headers": hdrs, "body": {} if body is None else body})


# --- framing ---------------------------------------------------------------------


def test_factory_counts_ids_and_stamps_headers() -> None:
    clock = FakeClock(42.5)
    factory = p.MessageFactory(clock)
    first = factory.build(p.ENV_TEXT, {"text": "hi"})
    second = factory.build(p.REPLY_ERROR, {"message": "x"}, parent_message_id=7, episode_id=3)
    assert first.headers == {"message_id": 1, "sent_at": 42.5}
    assert second.headers == {
        "message_id": 2,
        "sent_at": 42.5,
        "parent_message_id": 7,
        "episode_id": "3",
    }
    decoded = json.loads(second.to_json())
    assert decoded == {"method": p.REPLY_ERROR, "headers": second.headers, "body": {"message": "x"}}


def test_to_json_is_strict_json_for_numpy_and_nonfinite() -> None:
    import numpy as np

    msg = p.Message(p.ENV_OBSERVATION, {}, {"o": np.array([1.5, np.inf]), "n": np.int64(3)})
    text = msg.to_json()
    assert json.loads(text)["body"] == {"o": [1.5, "inf"], "n": 3}
    assert "Infinity" not in text


def test_to_jsonable_rejects_arbitrary_objects() -> None:
    with pytest.raises(TypeError):
        p.to_jsonable(object())


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{bad", "malformed JSON"),
        ("[1, 2]", "JSON object"),
        ('{"method": 3, "headers": {"message_id": 4}}', "method must be a string"),
        ('{"method": "x", "headers": []}', "headers must be an object"),
        ('{"method": "x", "headers": {"message_id": 4}, "body": [1]}', "body must be an object"),
    ],
)
def test_parse_message_rejects_malformed(text: str, error: str) -> None:
    with pytest.raises(p.ProtocolError, match=error):
        p.parse_message(text)


def test_parse_message_keeps_parent_id_when_readable() -> None:
    with pytest.raises(p.ProtocolError) as info:
        p.parse_message('{"method": "x", "headers": {"message_id": 9}, "body": 5}')
    assert info.value.parent_message_id == 9


def test_parse_message_size_limit() -> None:
    big = request(p.CONTROL_PING, body={"pad": "x" * p.MAX_INCOMING_MESSAGE_BYTES})
    with pytest.raises(p.MessageTooLarge):
        p.parse_message(big)
    assert p.parse_message(big, max_bytes=None).method == p.CONTROL_PING


@given(st.integers(min_value=0, max_value=2**62))
def test_episode_id_roundtrip(episode_id: int) -> None:
    assert p.parse_episode_id(p.format_episode_id(episode_id)) == episode_id


@pytest.mark.parametrize("value", ["", "-1", "1.5", "x1", None, True, -3, "١٢"])
def test_episode_id_rejects(value: object) -> None:
    assert p.parse_episode_id(value) is None


# --- episode ids -------------------------------------------------------------------


def test_episode_counter_states() -> None:
    counter = p.EpisodeCounter()
    assert (counter.episode_id, counter.state) == (0, "resetting")
    assert counter.begin_reset() == 1
    counter.finish_reset()
    assert counter.state == "running"
    assert counter.begin_reset(hint=10) == 11
    assert counter.state == "resetting"
    assert counter.begin_reset(hint=3) == 12  # a stale hint never moves the id back


@given(st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)), max_size=30))
def test_episode_ids_follow_max_rule(hints: list[int | None]) -> None:
    counter = p.EpisodeCounter()
    for hint in hints:
        before = counter.episode_id
        new = counter.begin_reset(hint)
        expected = before + 1 if hint is None else max(hint + 1, before + 1)
        assert new == expected == counter.episode_id
        counter.finish_reset()


# --- server state machine ----------------------------------------------------------


def decode(text: str) -> dict:
    return json.loads(text)


def test_server_ping_reply_has_parent_and_runtime() -> None:
    clock = FakeClock()
    conn = p.ServerConnection(clock=clock)
    event = conn.receive(request(p.CONTROL_PING, message_id=5))
    assert isinstance(event, p.PingRequest)
    clock.now += 0.25
    reply = decode(conn.reply_ping(event))
    assert reply["method"] == p.REPLY_CONTROL_PING
    assert reply["headers"]["parent_message_id"] == 5
    assert reply["headers"]["parent_runtime"] == pytest.approx(0.25)


def test_server_reset_request_and_reply() -> None:
    conn = p.ServerConnection()
    event = conn.receive(
        request(p.ENV_RESET, 3, {"env_id": "CartPole-v1", "seed": 7, "fps": 30}, episode_id="4")
    )
    assert event == p.ResetRequest(
        message_id=3,
        env_id="CartPole-v1",
        seed=7,
        fps=30.0,
        episode_id_hint=4,
        received_at=event.received_at,
    )
    assert isinstance(event, p.ResetRequest)
    reply = decode(conn.reply_reset(event, episode_id=5, frame=12))
    assert reply["method"] == p.REPLY_ENV_RESET
    assert reply["headers"]["episode_id"] == "5"
    assert reply["headers"]["parent_message_id"] == 3
    assert reply["body"] == {"frame": 12}


@pytest.mark.parametrize(
    ("body", "headers", "error"),
    [
        ({"seed": -1}, {}, "seed"),
        ({"seed": 1.5}, {}, "seed"),
        ({"seed": True}, {}, "seed"),
        ({"env_id": ""}, {}, "env_id"),
        ({"env_id": 5}, {}, "env_id"),
        ({"fps": 0}, {}, "fps"),
        ({}, {"episode_id": "abc"}, "episode_id"),
    ],
)
def test_server_reset_bad_body(body: dict, headers: dict, error: str) -> None:
    conn = p.ServerConnection()
    event = conn.receive(request(p.ENV_RESET, 8, body, **headers))
    assert isinstance(event, p.BadRequest)
    assert error in event.message
    reply = decode(event.reply)
    assert reply["method"] == p.REPLY_ERROR
    assert reply["headers"]["parent_message_id"] == 8


def test_server_step_only_in_lockstep() -> None:
    realtime = p.ServerConnection(lockstep=False)
    event = realtime.receive(request(p.ENV_STEP, 2, {"action": 1}))
    assert isinstance(event, p.BadRequest)
    assert "lockstep" in event.message
    lockstep = p.ServerConnection(lockstep=True)
    step = lockstep.receive(request(p.ENV_STEP, 2, {"action": [0.5]}))
    assert isinstance(step, p.StepRequest)
    assert step.action == [0.5]
    missing = lockstep.receive(request(p.ENV_STEP, 3, {}))
    assert isinstance(missing, p.BadRequest)


def test_server_observer_may_only_ping() -> None:
    conn = p.ServerConnection(observer=True, lockstep=True)
    assert isinstance(conn.receive(request(p.CONTROL_PING)), p.PingRequest)
    for method in (p.ENV_RESET, p.ENV_STEP):
        event = conn.receive(request(method, 4, {"action": 0}))
        assert isinstance(event, p.BadRequest)
        assert "observer" in event.message


def test_server_unknown_method_and_malformed_keep_going() -> None:
    conn = p.ServerConnection()
    unknown = conn.receive(request("v0.env.dance", 11))
    assert isinstance(unknown, p.BadRequest)
    assert decode(unknown.reply)["headers"]["parent_message_id"] == 11
    malformed = conn.receive("{nope")
    assert isinstance(malformed, p.BadRequest)
    assert "parent_message_id" not in decode(malformed.reply)["headers"]
    no_id = conn.receive(request(p.CONTROL_PING, message_id=None))
    assert isinstance(no_id, p.BadRequest)
    # the connection still works, and its own message ids kept counting
    ping = conn.receive(request(p.CONTROL_PING, 12))
    assert isinstance(ping, p.PingRequest)
    assert decode(conn.reply_ping(ping))["headers"]["message_id"] == 4


def test_server_oversized_raises() -> None:
    conn = p.ServerConnection(max_message_bytes=100)
    with pytest.raises(p.MessageTooLarge):
        conn.receive(request(p.CONTROL_PING, body={"pad": "y" * 200}))


@given(st.text(max_size=200))
def test_server_never_crashes_on_garbage(text: str) -> None:
    event = p.ServerConnection().receive(text)
    assert isinstance(event, (p.BadRequest, p.PingRequest, p.ResetRequest, p.StepRequest))


def test_server_push_shapes() -> None:
    conn = p.ServerConnection()
    reward = decode(
        conn.reward(reward=1.0, terminated=False, truncated=True, info={}, frame=9, episode_id=2)
    )
    assert reward["body"] == {
        "reward": 1.0,
        "done": True,
        "info": {},
        "terminated": False,
        "truncated": True,
        "frame": 9,
    }
    describe = decode(conn.describe({"env_id": "E", "env_state": "running", "fps": 60}, 2))
    assert describe["headers"]["episode_id"] == "2"
    close = decode(conn.close("bye"))
    assert (close["method"], close["body"]) == (p.CONNECTION_CLOSE, {"message": "bye"})
    ids = [decode(t)["headers"]["message_id"] for t in (conn.text("a"), conn.text("b"))]
    assert ids == [4, 5]


# --- client state machine ----------------------------------------------------------


def test_client_requests_and_replies_roundtrip() -> None:
    client = p.ClientConnection()
    server = p.ServerConnection(lockstep=True)
    ids = itertools.count(1)
    mid, text = client.reset(env_id="X-v0", seed=3, episode_id_hint=6)
    assert mid == next(ids)
    reset = server.receive(text)
    assert isinstance(reset, p.ResetRequest)
    assert (reset.env_id, reset.seed, reset.episode_id_hint) == ("X-v0", 3, 6)
    event = client.receive(server.reply_reset(reset, episode_id=7, frame=2))
    assert event == p.ResetReply(parent_message_id=mid, episode_id=7, frame=2)

    mid, text = client.step([0.25])
    step = server.receive(text)
    assert isinstance(step, p.StepRequest)
    event = client.receive(
        server.reply_step(
            step, frame=3, reward=1.0, terminated=False, truncated=False, info={}, episode_id=7
        )
    )
    assert isinstance(event, p.StepReply)
    assert (event.parent_message_id, event.frame, event.reward) == (mid, 3, 1.0)

    mid, text = client.ping()
    ping = server.receive(text)
    assert isinstance(ping, p.PingRequest)
    assert client.receive(server.reply_ping(ping)).parent_message_id == mid  # type: ignore[union-attr]


def test_client_decodes_pushes() -> None:
    client = p.ClientConnection()
    server = p.ServerConnection()
    body = {"env_id": "E", "env_state": "resetting", "fps": 30, "frame_shape": [4, 6, 3]}
    describe = client.receive(server.describe(body, 5))
    assert isinstance(describe, p.Describe)
    assert (describe.env_id, describe.env_state, describe.fps, describe.episode_id) == (
        "E",
        "resetting",
        30.0,
        5,
    )
    assert describe.body["frame_shape"] == [4, 6, 3]
    reward = client.receive(
        server.reward(reward=0.5, terminated=True, truncated=False, info={}, frame=1, episode_id=5)
    )
    assert reward == p.Reward(0.5, True, {}, True, False, 1, 5)
    assert client.receive(server.close("no")) == p.ConnectionClose("no")
    assert client.receive(server.error(4, "bad")) == p.ErrorReply(4, "bad")
    assert isinstance(client.receive(request("v0.future.thing")), p.UnknownMessage)


def test_client_rejects_bad_server_messages() -> None:
    client = p.ClientConnection()
    with pytest.raises(p.ProtocolError):
        client.receive(request(p.ENV_REWARD, body={"reward": "lots"}))
    with pytest.raises(p.ProtocolError):
        client.receive(request(p.REPLY_ENV_STEP, body={"frame": "x"}))
