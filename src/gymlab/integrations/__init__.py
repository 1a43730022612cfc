"""Adapters from :class:`gymlab.RemoteVectorEnv` to RL libraries' own vector-env APIs.

Each adapter lives in its own module and imports its library lazily, so ``import gymlab``
never needs them: ``gymlab.integrations.sb3`` (Stable-Baselines3, extra ``gymlab[sb3]``).
"""
