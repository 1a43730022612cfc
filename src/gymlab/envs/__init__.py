"""Environment profiles (envs/): locking their specs and installing from their locks."""
