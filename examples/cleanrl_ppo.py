"""PPO in CleanRL's single-file style, on gymlab remotes (needs PyTorch: pip install torch).

    python examples/cleanrl_ppo.py --num-envs 2 --total-timesteps 4096      # local remotes
    python examples/cleanrl_ppo.py --remotes vnc://rt01:5900+15900?password=...

The loop is CleanRL's ppo.py (GAE, clipped surrogate, value loss, entropy bonus) over a
Gymnasium vector env; only the line that makes the envs is gymlab's. It learns from the env's
own observation (``observation="state"``): pass ``--pixels`` for the display's pixels with a
small CNN instead.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from gymnasium.wrappers.vector import RecordEpisodeStatistics
from torch import nn
from torch.distributions.categorical import Categorical

import gymlab


def layer(module: nn.Module, std: float = np.sqrt(2)) -> nn.Module:
    nn.init.orthogonal_(module.weight, std)  # type: ignore[arg-type]
    nn.init.constant_(module.bias, 0.0)  # type: ignore[arg-type]
    return module


class Agent(nn.Module):
    def __init__(self, obs_shape: tuple[int, ...], actions: int, pixels: bool) -> None:
        super().__init__()
        if pixels:  # (H, W, 3) uint8 -> a small CNN on a 4x downsampled grey image
            self.encode: nn.Module = nn.Sequential(
                layer(nn.Conv2d(1, 16, 8, stride=4)), nn.ReLU(),
                layer(nn.Conv2d(16, 32, 4, stride=2)), nn.ReLU(),
                nn.AdaptiveAvgPool2d(4), nn.Flatten(), layer(nn.Linear(512, 64)), nn.Tanh(),
            )  # fmt: skip
        else:
            self.encode = nn.Sequential(layer(nn.Linear(int(np.prod(obs_shape)), 64)), nn.Tanh())
        self.pixels = pixels
        self.critic = nn.Sequential(layer(nn.Linear(64, 64)), nn.Tanh(), layer(nn.Linear(64, 1), 1))
        self.actor = nn.Sequential(
            layer(nn.Linear(64, 64)), nn.Tanh(), layer(nn.Linear(64, actions), 0.01)
        )

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        if self.pixels:
            grey = obs.float().mean(-1, keepdim=True)[:, ::4, ::4].permute(0, 3, 1, 2) / 255.0
            return self.encode(grey)
        return self.encode(obs.float())

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.features(obs))

    def act(
        self, obs: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden = self.features(obs)
        dist = Categorical(logits=self.actor(hidden))
        action = dist.sample() if action is None else action
        return action, dist.log_prob(action), dist.entropy(), self.critic(hidden)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="CartPole-v1")
    parser.add_argument("--remotes", help="a remotes string; default: start --num-envs locally")
    parser.add_argument("--num-envs", type=int, default=2)
    parser.add_argument("--num-steps", type=int, default=128, help="steps per env per rollout")
    parser.add_argument("--total-timesteps", type=int, default=4096)
    parser.add_argument("--pixels", action="store_true", help="learn from pixels, not state")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    gamma, lam, clip, epochs, minibatches, lr = 0.99, 0.95, 0.2, 4, 4, 2.5e-4

    torch.manual_seed(args.seed)
    envs = RecordEpisodeStatistics(
        gymlab.make(
            args.env_id,
            remotes=args.remotes or args.num_envs,  # a number: start local remotes
            observation="pixels" if args.pixels else "state",
        )
    )
    n = envs.num_envs
    obs_shape = envs.single_observation_space.shape
    agent = Agent(obs_shape, int(envs.single_action_space.n), args.pixels)
    optimizer = torch.optim.Adam(agent.parameters(), lr=lr, eps=1e-5)
    obs_buf = torch.zeros((args.num_steps, n, *obs_shape))
    actions, logprobs, rewards, dones, values = (torch.zeros((args.num_steps, n)) for _ in range(5))
    next_obs = torch.as_tensor(envs.reset(seed=args.seed)[0])
    next_done = torch.zeros(n)
    start, global_step = time.time(), 0
    try:
        for _ in range(args.total_timesteps // (args.num_steps * n)):
            for step in range(args.num_steps):
                global_step += n
                obs_buf[step], dones[step] = next_obs, next_done
                with torch.no_grad():
                    action, logprob, _, value = agent.act(next_obs)
                actions[step], logprobs[step], values[step] = action, logprob, value.flatten()
                obs, reward, term, trunc, infos = envs.step(action.numpy())
                rewards[step] = torch.as_tensor(reward, dtype=torch.float32)
                next_obs = torch.as_tensor(obs)
                next_done = torch.as_tensor(term | trunc, dtype=torch.float32)
                for i in np.flatnonzero(infos.get("_episode", [])):
                    print(f"global_step={global_step}, episodic_return={infos['episode']['r'][i]}")
            with torch.no_grad():  # generalised advantage estimation
                next_value = agent.value(next_obs).flatten()
                advantages, last = torch.zeros_like(rewards), torch.zeros(n)
                for t in reversed(range(args.num_steps)):
                    following = next_value if t == args.num_steps - 1 else values[t + 1]
                    alive = 1.0 - (next_done if t == args.num_steps - 1 else dones[t + 1])
                    delta = rewards[t] + gamma * following * alive - values[t]
                    advantages[t] = last = delta + gamma * lam * alive * last
                returns = advantages + values
            b_obs, b_act = obs_buf.reshape(-1, *obs_shape), actions.reshape(-1)
            b_logp, b_adv, b_ret = logprobs.reshape(-1), advantages.reshape(-1), returns.reshape(-1)
            batch = b_obs.shape[0]
            for _ in range(epochs):
                order = torch.randperm(batch)
                for mb in order.split(batch // minibatches):
                    _, logp, entropy, value = agent.act(b_obs[mb], b_act[mb].long())
                    ratio = (logp - b_logp[mb]).exp()
                    adv = (b_adv[mb] - b_adv[mb].mean()) / (b_adv[mb].std() + 1e-8)
                    pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip))
                    v_loss = 0.5 * ((value.flatten() - b_ret[mb]) ** 2).mean()
                    loss = pg_loss.mean() - 0.01 * entropy.mean() + 0.5 * v_loss
                    optimizer.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
                    optimizer.step()
            print(f"SPS: {int(global_step / (time.time() - start))}")
    finally:
        envs.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
