"""Control-machine tooling behind the invoke tasks: Docker daemon, base images, sandbox host.

Nothing in here runs on lab hosts; Ansible roles do that.
"""
