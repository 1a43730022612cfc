"""Local systemd base images, built with debootstrap since no registry can be reached.

Each image is keyed by a hash of its recipe: ``invoke images`` rebuilds only what changed.
Mirrors are never written here: Debian suites use the host's own apt source when the host is
Debian (so labs with a local mirror keep using it), Ubuntu suites use debootstrap's default,
and ``GYMLAB_DEBIAN_MIRROR`` / ``GYMLAB_UBUNTU_MIRROR`` override either.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gymlab.lab import docker
from gymlab.lab.errors import LabError
from gymlab.lab.proc import run

IMAGE_REPO = "gymlab/base"
RECIPE_LABEL = "org.gymlab.recipe"
# Bumped when the build steps below change in a way the recipe fields do not capture.
BUILD_STEPS_VERSION = 5

# Ubuntu's archive key, taken from Debian's ``ubuntu-keyring`` package (trixie, main) and
# pinned: Debian's own debootstrap carries no Ubuntu keyring.
UBUNTU_KEYRING_PACKAGE = "ubuntu-keyring"
UBUNTU_KEYRING_SUITE = "trixie"
UBUNTU_KEYRING_DEB_SHA256 = "b2e7ed48431bf9e7978ae810bbdaf253093570d6e3f864e575b7c13554b81174"
UBUNTU_KEYRING_FILE = "usr/share/keyrings/ubuntu-archive-keyring.gpg"
DEBOOTSTRAP_DIR = Path("/usr/share/debootstrap")

# sudo: real lab hosts have it, and playbooks `become` through it even when connected as root.
BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-apt",
    "ca-certificates",
    "sudo",
)


@dataclass(frozen=True)
class Recipe:
    """What goes into one base image."""

    name: str
    distro: str  # "debian" | "ubuntu"
    suite: str
    components: tuple[str, ...]
    packages: tuple[str, ...] = BASE_PACKAGES
    extra_suites: tuple[str, ...] = field(default=())

    @property
    def script_family(self) -> str:
        """debootstrap's script for a suite it has no script of: every Ubuntu suite since gutsy
        (and every Debian one) bootstraps the same way, so debootstrap itself links new suites
        to these."""
        return "gutsy" if self.distro == "ubuntu" else "sid"

    @property
    def digest(self) -> str:
        blob = json.dumps({**asdict(self), "steps": BUILD_STEPS_VERSION}, sort_keys=True)
        if self.distro == "ubuntu":
            blob += UBUNTU_KEYRING_DEB_SHA256
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPO}:{self.name}"


UBUNTU_COMPONENTS = ("main", "restricted", "universe", "multiverse")
DEBIAN_COMPONENTS = ("main", "contrib", "non-free", "non-free-firmware")


def _ubuntu(name: str, suite: str) -> Recipe:
    extra = (suite + "-updates", suite + "-security")
    return Recipe(name, "ubuntu", suite, UBUNTU_COMPONENTS, extra_suites=extra)


def _debian(name: str, suite: str) -> Recipe:
    # Debian's -security suite is served from another archive than the release: not added here
    return Recipe(name, "debian", suite, DEBIAN_COMPONENTS, extra_suites=(suite + "-updates",))


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        _debian("debian12", "bookworm"),
        _debian("debian13", "trixie"),
        _ubuntu("ubuntu1804", "bionic"),
        _ubuntu("ubuntu2204", "jammy"),
        _ubuntu("ubuntu2404", "noble"),
    )
}


def host_debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str | None:
    """The first Debian archive URI in this host's apt sources, if the host uses one."""
    texts = [p.read_text() for p in sorted(apt_dir.glob("sources.list.d/*.sources"))]
    texts += [p.read_text() for p in (apt_dir / "sources.list",) if p.is_file()]
    texts += [p.read_text() for p in sorted(apt_dir.glob("sources.list.d/*.list"))]
    for text in texts:
        for uri in re.findall(r"(?:^URIs:\s*|^deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text, re.M):
            if uri.rstrip("/").endswith("/debian"):
                return uri
    return None


def mirror_for(recipe: Recipe) -> str | None:
    """The mirror to bootstrap from; None lets debootstrap choose its default for the suite."""
    override = os.environ.get(f"GYMLAB_{recipe.distro.upper()}_MIRROR")
    if override:
        return override
    return host_debian_mirror() if recipe.distro == "debian" else None


def _fetch_ubuntu_keyring(workdir: Path) -> Path:
    """Download Debian's ubuntu-keyring package, check its pinned sha256, return the keyring."""
    mirror = os.environ.get("GYMLAB_DEBIAN_MIRROR") or host_debian_mirror()
    if mirror is None:
        raise LabError(
            "cannot find a Debian mirror for the Ubuntu keyring; set GYMLAB_DEBIAN_MIRROR"
        )
    lists = workdir / "apt-lists"
    (lists / "partial").mkdir(parents=True)
    sources = workdir / "keyring.list"
    sources.write_text(f"deb {mirror} {UBUNTU_KEYRING_SUITE} main\n")
    opts = [
        f"-oDir::Etc::SourceList={sources}",
        "-oDir::Etc::SourceParts=/dev/null",
        f"-oDir::State::Lists={lists}",
        "-oAPT::Sandbox::User=root",
    ]
    run(["apt-get", *opts, "update"], what="apt-get update (ubuntu keyring)")
    debs = workdir / "debs"
    debs.mkdir()
    subprocess.run(
        ["apt-get", *opts, "download", UBUNTU_KEYRING_PACKAGE],
        cwd=debs,
        check=True,
        capture_output=True,
    )
    deb = next(debs.glob("*.deb"))
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    if digest != UBUNTU_KEYRING_DEB_SHA256:
        raise LabError(
            f"{deb.name}: sha256 {digest} does not match the pinned {UBUNTU_KEYRING_DEB_SHA256}; "
            "refusing to trust it (update UBUNTU_KEYRING_DEB_SHA256 after checking the package)"
        )
    unpacked = workdir / "keyring"
    run(["dpkg-deb", "-x", str(deb), str(unpacked)], what="unpack ubuntu-keyring")
    return unpacked / UBUNTU_KEYRING_FILE


def debootstrap_dir(recipe: Recipe, work: Path, system: Path = DEBOOTSTRAP_DIR) -> Path | None:
    """A private ``DEBOOTSTRAP_DIR`` when this debootstrap has no script for the suite (Debian
    12's knows no Ubuntu after jammy): the system's scripts, plus the suite linked to its
    family's script, as debootstrap's own package does for each new suite. None when the
    system's debootstrap knows the suite."""
    scripts = system / "scripts"
    if (scripts / recipe.suite).exists():
        return None
    family = scripts / recipe.script_family
    if not family.exists():
        raise LabError(
            f"debootstrap has no script for {recipe.suite} nor for its family "
            f"{recipe.script_family} under {scripts}; install a newer debootstrap"
        )
    private = work / "debootstrap"
    (private / "scripts").mkdir(parents=True)
    (private / "functions").symlink_to(system / "functions")
    for script in scripts.iterdir():
        (private / "scripts" / script.name).symlink_to(script)
    (private / "scripts" / recipe.suite).symlink_to(family)
    return private


def _configure_rootfs(root: Path, recipe: Recipe) -> None:
    """Make the tree boot systemd in a container and see all of its suite's updates."""
    sources = root / "etc/apt/sources.list"
    first = sources.read_text().splitlines()[0].split()
    mirror = first[1]
    lines = [f"deb {mirror} {s} {' '.join(recipe.components)}" for s in (recipe.suite,)]
    for suite in recipe.extra_suites:
        lines.append(f"deb {mirror} {suite} {' '.join(recipe.components)}")
    sources.write_text("\n".join(lines) + "\n")
    # systemd makes a machine id at first boot when the file is empty.
    (root / "etc/machine-id").write_text("")
    # Units that cannot work in a container and only slow boot or fail.
    for unit in ("getty.target", "systemd-udevd.service", "systemd-remount-fs.service"):
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    # Only the release suite's lists were fetched, and fresh timestamps would keep Ansible's
    # cache_valid_time from fetching -updates/-security: hosts must start with no lists at all.
    lists = root / "var/lib/apt/lists"
    for entry in lists.iterdir():
        if entry.is_file():
            entry.unlink()
    # Ansible's cache_valid_time reads the lists folder's mtime: make it look ancient.
    os.utime(lists, (0, 0))
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True)


def build(recipe: Recipe, *, log: Callable[[str], None] = print, force: bool = False) -> str:
    """Build (or reuse) the image for ``recipe``; return its tag."""
    docker.ensure_daemon()
    if not force and docker.image_label(recipe.tag, RECIPE_LABEL) == recipe.digest:
        log(f"{recipe.tag}: up to date (recipe {recipe.digest})")
        return recipe.tag
    if os.geteuid() != 0:
        raise LabError("building base images runs debootstrap, which needs root")
    if shutil.which("debootstrap") is None:
        raise LabError("debootstrap is not installed; run `apt-get install debootstrap`")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"gymlab-{recipe.name}-") as tmp:
        work = Path(tmp)
        root = work / "rootfs"
        argv = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(recipe.packages)}",
            f"--components={','.join(recipe.components)}",
        ]
        if recipe.distro == "ubuntu":
            argv.append(f"--keyring={_fetch_ubuntu_keyring(work)}")
        argv += [recipe.suite, str(root)]
        mirror = mirror_for(recipe)
        if mirror:
            argv.append(mirror)
        private = debootstrap_dir(recipe, work)
        how = f" with its {recipe.script_family} script" if private else ""
        log(f"{recipe.tag}: debootstrap {recipe.suite}{how} (about a minute)")
        env = {**os.environ, "DEBOOTSTRAP_DIR": str(private)} if private else None
        run(argv, what=f"debootstrap {recipe.suite}", timeout=1800, env=env)
        _configure_rootfs(root, recipe)
        log(f"{recipe.tag}: importing into Docker")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        changes = [
            f"LABEL {RECIPE_LABEL}={recipe.digest}",
            "ENV container=docker",
            'CMD ["/lib/systemd/systemd"]',
        ]
        imp = ["docker", "import"]
        for change in changes:
            imp += ["--change", change]
        imp += ["-", recipe.tag]
        done = subprocess.run(imp, stdin=tar.stdout, capture_output=True, check=False)
        tar.wait()
        if done.returncode != 0 or tar.returncode != 0:
            raise LabError(f"docker import of {recipe.tag} failed: {done.stderr.decode().strip()}")
    log(f"{recipe.tag}: built in {time.monotonic() - started:.0f}s (recipe {recipe.digest})")
    return recipe.tag


def resolve(names: list[str] | None) -> list[Recipe]:
    """Recipes by name (all when ``names`` is empty); an unknown name is a LabError."""
    if not names:
        return list(RECIPES.values())
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise LabError(f"unknown image {', '.join(unknown)}; expected one of {', '.join(RECIPES)}")
    return [RECIPES[n] for n in names]
