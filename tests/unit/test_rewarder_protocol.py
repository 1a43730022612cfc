"""The sans-I/O rewarder protocol: events, field rules, the state table, both sides.

Most tests drive a server and a client :class:`Connection` against each other with
``send``/``receive`` pairs; hand-written frames stand in for other implementations
(Universe's client and server) and for hostile peers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gymlab.rewarder import protocol as p
from gymlab.rewarder.protocol.events import EVENTS


class FakeClock:
    """A clock the test moves by hand, so parent_runtime is exact."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def frame(method: str, message_id: int | None = 1, body: Any = None, **headers: Any) -> str:
    """A hand-built v0 frame, as another implementation would send it."""
    hdrs: dict[str, Any] = {"sent_at": 1.0, **headers}
    if message_id is not None:
        hdrs["message_id"] = message_id
    return json.dumps({"method": method, "headers": hdrs, "body": {} if body is None else body})


def pair(
    mode: p.Mode = p.Mode.LOCKSTEP, observer: bool = False, clock: FakeClock | None = None
) -> tuple[p.Connection, p.Connection]:
    clock = clock or FakeClock()
    server = p.Connection(p.Role.SERVER, mode, observer, clock=clock)
    client = p.Connection(p.Role.CLIENT, None, observer, clock=clock)
    client.receive(server.send(p.Describe(env_id="X-v0", env_state=p.EnvState.RUNNING,
                                          mode=mode, episode_id=1)))  # fmt: skip
    return server, client


def relay(sender: p.Connection, receiver: p.Connection, event: p.Event) -> p.Event:
    return receiver.receive(sender.send(event))


# --- the conversation -------------------------------------------------------------


def test_lockstep_conversation_both_sides() -> None:
    clock = FakeClock()
    server, client = pair(clock=clock)
    assert client.mode is p.Mode.LOCKSTEP  # learnt from the describe
    reset = relay(client, server, p.Reset(seed=3, episode_id=client.episode_id))
    assert isinstance(reset, p.Reset) and (reset.seed, reset.episode_id) == (3, 1)
    assert server.reset_pending and client.reset_pending
    clock.now += 0.25
    reply = relay(server, client, p.ResetReply(frame=7, episode_id=2))
    assert isinstance(reply, p.ResetReply) and reply.episode_id == 2
    assert reply.parent_message_id == reset.message_id
    assert reply.headers.parent_runtime == pytest.approx(0.25)
    assert not client.reset_pending and client.episode_id == 2
    step = relay(client, server, p.Step(action=[1, 0]))
    assert isinstance(step, p.Step) and step.action == [1, 0]
    out = relay(server, client, p.StepReply(frame=8, reward=1.5, truncated=True, episode_id=3))
    assert isinstance(out, p.StepReply)
    assert (out.frame, out.reward, out.terminated, out.truncated, out.done) == (
        8, 1.5, False, True, True,
    )  # fmt: skip
    assert out.parent_message_id == step.message_id and client.in_flight == 0


def test_message_ids_count_up_and_headers_are_kept() -> None:
    _server, client = pair()
    first = json.loads(client.send(p.Ping()))["headers"]
    second = json.loads(client.send(p.Ping()))["headers"]
    assert second["message_id"] == first["message_id"] + 1
    event = client.receive(frame(p.ENV_TEXT, 9, {"text": "hi"}, **{"x-trace": "abc"}))
    assert isinstance(event, p.Text)
    assert event.sent_at == 1.0 and event.message_id == 9
    assert event.headers.extra == {"x-trace": "abc"}


def test_replies_answer_the_request_in_flight_and_nothing_else() -> None:
    server, client = pair()
    with pytest.raises(p.LocalProtocolError, match=r"answers no request"):
        server.send(p.PingReply())
    server.receive(client.send(p.Ping()))
    with pytest.raises(p.LocalProtocolError, match=r"answers no request"):
        server.send(p.StepReply(frame=1))  # a step reply cannot answer a ping
    server.send(p.PingReply())


def test_universe_reward_has_only_done() -> None:
    _, client = pair()
    event = client.receive(frame(p.ENV_REWARD, None, {"reward": 2, "done": True, "info": {}},
                                 episode_id="1"))  # fmt: skip
    assert isinstance(event, p.Reward)
    assert (event.reward, event.terminated, event.truncated, event.done) == (2.0, True, False, True)


def test_rewards_carry_done_for_old_clients_and_new_flags() -> None:
    server, _ = pair()
    body = json.loads(server.send(p.Reward(reward=1, truncated=True, frame=4, episode_id=1)))
    assert body["body"] == {
        "reward": 1.0, "terminated": False, "truncated": True, "info": {}, "frame": 4,
        "done": True,
    }  # fmt: skip
    assert body["headers"]["episode_id"] == "1"


def test_unknown_methods_and_fields_are_ignored_by_a_client() -> None:
    _, client = pair()
    event = client.receive(frame("v1.env.fancy", 5, {"x": 1}))
    assert isinstance(event, p.Unknown) and event.method == "v1.env.fancy"
    describe = client.receive(frame(p.ENV_DESCRIBE, 6, {"env_id": "Y-v0", "novel": [1]}))
    assert isinstance(describe, p.Describe) and describe.env_id == "Y-v0"


def test_nonfinite_floats_and_numpy_travel_as_strict_json() -> None:
    import numpy as np

    server, client = pair()
    text = server.send(p.Observation(observation=np.array([1.5, np.inf]), episode_id=1))
    assert "Infinity" not in text
    event = client.receive(text)
    assert isinstance(event, p.Observation) and event.observation == [1.5, "inf"]


# --- the state table --------------------------------------------------------------


def test_step_during_a_reset_is_refused_on_both_sides() -> None:
    server, client = pair()
    server.receive(client.send(p.Reset()))
    with pytest.raises(p.LocalProtocolError, match=r"reset is in flight"):
        client.send(p.Step(action=0))
    with pytest.raises(p.RemoteProtocolError, match=r"reset is in flight") as info:
        server.receive(frame(p.ENV_STEP, 50, {"action": 0}))
    assert info.value.parent_message_id == 50
    error = json.loads(server.send(p.ErrorReply(message=str(info.value))))
    assert error["headers"]["parent_message_id"] == 50


def test_observers_may_only_ping() -> None:
    server, client = pair(observer=True)
    for request in (p.Reset(), p.Step(action=0)):
        with pytest.raises(p.LocalProtocolError, match=r"observers"):
            client.send(request)
    with pytest.raises(p.RemoteProtocolError, match=r"observers cannot send v0.env.reset"):
        server.receive(frame(p.ENV_RESET, 3))
    server.send(p.ErrorReply(message="no"))
    assert isinstance(server.receive(client.send(p.Ping())), p.Ping)


def test_step_exists_only_in_lockstep() -> None:
    server, client = pair(p.Mode.REALTIME)
    with pytest.raises(p.LocalProtocolError, match=r"only available in lockstep mode"):
        client.send(p.Step(action=0))
    with pytest.raises(p.RemoteProtocolError, match=r"only available in lockstep mode"):
        server.receive(frame(p.ENV_STEP, 4, {"action": 0}))


def test_each_side_refuses_the_other_sides_events() -> None:
    server, client = pair()
    with pytest.raises(p.RemoteProtocolError, match=r"sent by the server"):
        server.receive(frame(p.ENV_DESCRIBE, 1))
    with pytest.raises(p.RemoteProtocolError, match=r"sent by the client"):
        client.receive(frame(p.ENV_RESET, 1))
    with pytest.raises(p.LocalProtocolError):
        client.send(p.Reward())
    with pytest.raises(p.LocalProtocolError):
        server.send(p.Reset())


def test_requests_in_flight_are_bounded() -> None:
    server, client = pair()
    for _ in range(p.MAX_IN_FLIGHT):
        server.receive(client.send(p.Ping()))
    with pytest.raises(p.LocalProtocolError, match=r"already in flight"):
        client.send(p.Ping())
    with pytest.raises(p.RemoteProtocolError, match=r"already in flight"):
        server.receive(frame(p.CONTROL_PING, 999))


def test_nothing_is_sent_after_close() -> None:
    server, client = pair()
    client.receive(server.send(p.Close(message="bye")))
    assert server.closed and client.closed
    with pytest.raises(p.LocalProtocolError, match=r"closed"):
        server.send(p.Text(text="late"))


# --- field rules ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "error"),
    [
        ({"env_id": ""}, {}, "body.env_id must be a non-empty string"),
        ({"env_id": 3}, {}, "body.env_id"),
        ({"seed": -1}, {}, "body.seed must be an integer in 0..2\\*\\*63-1"),
        ({"seed": 2**64}, {}, "body.seed"),
        ({"seed": True}, {}, "body.seed"),
        ({"fps": 0.001}, {}, "body.fps must be a number in 1..1000"),
        ({"fps": 1e9}, {}, "body.fps"),
        ({}, {"episode_id": "x1"}, "headers.episode_id must be a decimal integer string"),
        ({}, {"episode_id": "9" * 20}, "headers.episode_id"),
        ({}, {"episode_id": str(p.MAX_EPISODE_HINT + 1)}, "headers.episode_id"),
        ({}, {"sent_at": "now"}, "headers.sent_at must be a non-negative number"),
    ],
)
def test_reset_fields_are_checked_one_rule_each(body: dict, headers: dict, error: str) -> None:
    server, _ = pair()
    with pytest.raises(p.RemoteProtocolError, match=error) as info:
        server.receive(frame(p.ENV_RESET, 8, body, **headers))
    assert info.value.parent_message_id == 8 and not info.value.fatal


def test_an_id_the_server_may_issue_is_one_the_client_accepts_and_hints_back() -> None:
    server, client = pair()
    reset = server.receive(client.send(p.Reset(episode_id=p.MAX_EPISODE_HINT)))
    assert isinstance(reset, p.Reset)
    counter = p.Episode(5)
    new_id = counter.begin_reset(reset.episode_id)
    assert new_id == p.MAX_EPISODE_HINT + 1
    reply = client.receive(server.send(p.ResetReply(episode_id=new_id)))
    assert isinstance(reply, p.ResetReply) and reply.episode_id == new_id
    # the client's next hint is its episode, clamped to what a server accepts
    again = server.receive(client.send(p.Reset(episode_id=p.episode_hint(new_id))))
    assert isinstance(again, p.Reset) and again.episode_id == p.MAX_EPISODE_HINT
    assert counter.begin_reset(again.episode_id) == new_id + 1
    assert client.receive(server.send(p.Text(text="x", episode_id=p.MAX_EPISODE_ID)))
    with pytest.raises(p.LocalProtocolError, match=r"headers.episode_id"):
        server.send(p.Text(text="x", episode_id=p.MAX_EPISODE_ID + 1))


def test_reset_reply_must_name_the_episode() -> None:
    _, client = pair()
    client.send(p.Reset())
    with pytest.raises(p.RemoteProtocolError, match=r"headers.episode_id must be"):
        client.receive(frame(p.REPLY_ENV_RESET, 3, {}, parent_message_id=1))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{bad", "malformed JSON"),
        ("[1, 2]", "JSON object"),
        ('{"method": 3, "headers": {"message_id": 4}}', "method must be a string"),
        ('{"method": "x", "headers": []}', "headers must be an object"),
        ('{"method": "v0.env.reset", "headers": {"message_id": 4}, "body": [1]}', "body must be"),
        ('{"method": "v0.control.ping", "headers": {}}', "headers.message_id must be"),
        ('{"method": "v0.control.ping", "headers": {"message_id": 1e400}}', "message_id"),
        (
            '{"method": "v0.env.step", "headers": {"message_id": 1}, "body": {"action": NaN}}',
            "NaN is not strict JSON",
        ),
        ('{"method": "v0.env.step", "headers": {"message_id": 1}, "body": {}}', "body.action"),
        ('{"method": "v0.env.bogus", "headers": {"message_id": 1}}', "unknown method"),
    ],
)
def test_server_refuses_malformed_frames_in_one_line(text: str, error: str) -> None:
    server, _ = pair()
    with pytest.raises(p.RemoteProtocolError, match=error) as info:
        server.receive(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("depth", [p.MAX_JSON_DEPTH + 1, 25_000])
def test_deep_nesting_is_a_protocol_error_not_a_crash(depth: int) -> None:
    server, _ = pair()
    action = "[" * depth + "]" * depth
    text = f'{{"method":"v0.env.step","headers":{{"message_id":1}},"body":{{"action":{action}}}}}'
    assert len(text) < p.MAX_INCOMING_MESSAGE_BYTES
    with pytest.raises(p.RemoteProtocolError, match=r"nested deeper"):
        server.receive(text)


def test_huge_integers_are_kept_exactly_and_checked_by_their_field() -> None:
    server, _ = pair()
    step = server.receive(frame(p.ENV_STEP, 1, {"action": 2**64}))
    assert isinstance(step, p.Step) and step.action == 2**64  # the env's space decides


def test_oversized_frames_are_fatal() -> None:
    server, _ = pair()
    with pytest.raises(p.MessageTooLarge) as info:
        server.receive("x" * (p.MAX_INCOMING_MESSAGE_BYTES + 1))
    assert info.value.fatal


def test_client_checks_server_fields_too() -> None:
    _, client = pair()
    for body, error in [
        ({"reward": "lots"}, "body.reward must be a finite number"),
        ({"reward": 1, "terminated": "yes"}, "body.terminated must be true or false"),
        ({"reward": 1, "info": [1]}, "body.info must be an object"),
    ]:
        with pytest.raises(p.RemoteProtocolError, match=error):
            client.receive(frame(p.ENV_REWARD, 2, body, episode_id="1"))
    with pytest.raises(p.RemoteProtocolError, match=r"frame_shape"):
        client.receive(frame(p.ENV_DESCRIBE, 3, {"frame_shape": [16384 * 2, 10, 3]}))


# --- fuzzing ----------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
METHODS = st.sampled_from([*EVENTS, "v0.other", ""])


@settings(max_examples=300)
@given(method=METHODS, headers=JSON, body=JSON, role=st.sampled_from(list(p.Role)))
def test_either_side_takes_any_frame_without_crashing(
    method: str, headers: Any, body: Any, role: p.Role
) -> None:
    conn = p.Connection(role, p.Mode.LOCKSTEP)
    if role is p.Role.SERVER:
        conn.send(p.Describe(env_id="X-v0"))
    text = json.dumps({"method": method, "headers": headers, "body": body})
    try:
        event = conn.receive(text)
    except p.RemoteProtocolError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(event, p.Event)


@given(st.text(max_size=200))
def test_garbage_text_is_a_remote_error(text: str) -> None:
    server, _ = pair()
    try:
        server.receive(text)
    except p.RemoteProtocolError:
        pass


@given(st.lists(st.one_of(st.none(), st.integers(0, p.MAX_EPISODE_HINT)), max_size=30))
def test_episode_ids_follow_the_max_rule_and_stay_acceptable(hints: list[int | None]) -> None:
    counter = p.Episode(0, p.Phase.RESETTING)
    server, client = pair()
    previous = counter.episode_id
    for hint in hints:
        new = counter.begin_reset(hint)
        expected = previous + 1 if hint is None else max(previous, hint) + 1
        assert new == expected and counter.state is p.EnvState.RESETTING
        counter.finish_reset()
        assert counter.state is p.EnvState.RUNNING
        event = client.receive(server.send(p.Text(text="", episode_id=new)))
        assert isinstance(event, p.Text) and event.episode_id == new
        previous = new


def test_a_step_without_autoreset_that_ends_the_episode_allows_only_a_reset() -> None:
    server, client = pair()
    step = relay(client, server, p.Step(action=0, autoreset=False))
    assert isinstance(step, p.Step) and step.autoreset is False
    relay(server, client, p.StepReply(frame=5, terminated=True, episode_id=1))
    assert client.episode_ended and server.episode_ended
    with pytest.raises(p.LocalProtocolError, match="the episode has ended"):
        client.send(p.Step(action=0))
    with pytest.raises(p.RemoteProtocolError, match="the episode has ended"):
        server.receive(frame(p.ENV_STEP, 60, {"action": 0}))
    server.send(p.ErrorReply(message="ended"))
    relay(client, server, p.Reset())
    relay(server, client, p.ResetReply(frame=6, episode_id=2))
    assert not client.episode_ended and not server.episode_ended
    relay(client, server, p.Step(action=1))  # the default lets the runtime reset by itself
    relay(server, client, p.StepReply(frame=7, terminated=True, episode_id=3))
    assert not client.episode_ended


EVENTS = st.sampled_from(
    [
        p.Reset(),
        p.Step(action=0),
        p.Step(action=1, autoreset=False),
        p.Ping(),
        p.ResetReply(frame=1, episode_id=9),
        p.StepReply(frame=2, terminated=True, episode_id=9),
        p.StepReply(frame=3, episode_id=9),
        p.PingReply(),
        p.ErrorReply(message="no"),
        p.Reward(reward=1.0, episode_id=9),
        p.Describe(env_state=p.EnvState.RESETTING, episode_id=10),
        p.Text(text="hi"),
    ]
)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.booleans(), EVENTS), max_size=40))
def test_any_order_of_events_keeps_both_sides_consistent(
    script: list[tuple[bool, p.Event]],
) -> None:
    """Out-of-order and illegal events: refused by the side that sends them, never a crash."""
    server, client = pair()
    for from_client, event in script:
        sender, receiver = (client, server) if from_client else (server, client)
        try:
            text = sender.send(event)
        except p.LocalProtocolError:
            continue  # this side may not send it now: nothing went out
        receiver.receive(text)  # what one side may send, the other accepts
        assert client.in_flight == server.in_flight <= p.MAX_IN_FLIGHT
        assert client.reset_pending == server.reset_pending
        assert client.episode_ended == server.episode_ended
