"""Draw CartPole in a real window on $DISPLAY and keep it up for a few seconds.

Usage: draw_window.py SECONDS. Runs inside the host with the probe kit (Python 3.6+).
"""

import sys
import time

hold = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
try:
    import gymnasium as gym

    env = gym.make("CartPole-v1", render_mode="human")
    env.reset(seed=0)

    def draw():
        env.render()

except ImportError:  # pyglet-era gym on Ubuntu 18.04
    import gym

    env = gym.make("CartPole-v0")
    env.seed(0)
    env.reset()

    def draw():
        env.render(mode="human")


deadline = time.time() + hold
while time.time() < deadline:
    draw()
    time.sleep(0.05)
env.close()
