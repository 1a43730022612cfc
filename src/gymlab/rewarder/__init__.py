"""The rewarder: gymlab's v0 websocket side channel (rewards, episode state, control).

``protocol`` is the sans-I/O state machine, ``server`` and ``client`` wrap it
in asyncio websockets, ``reward_buffer`` accumulates rewards client-side.
Import those modules directly; this package stays import-light.
"""
