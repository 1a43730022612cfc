"""Render one CartPole frame in rgb_array mode; print its shape and colour count as JSON.

Runs inside the host with the probe kit (Python 3.6+: no newer syntax here).
"""

import json

try:
    import gymnasium as gym

    env = gym.make("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
except ImportError:  # pyglet-era gym on Ubuntu 18.04
    import gym

    env = gym.make("CartPole-v0")
    env.seed(0)
    env.reset()
    frame = env.render(mode="rgb_array")

import numpy as np

colours = len(np.unique(frame.reshape(-1, frame.shape[-1]), axis=0))
print(json.dumps({"shape": list(frame.shape), "colours": int(colours)}))
env.close()
