"""Browser runtimes: MiniWoB++ web tasks in Chromium, on the runtime's own display.

Here the program draws its own window: Chromium shows the task page on the runtime's Xvnc
display, its viewport exactly the task area (160x210 for MiniWoB++), so what a VNC client
sees is the task and what it clicks or types reaches Chromium as real X input (Universe's
semantics: a click is a click). The runtime talks to the page through chromedriver only to
start episodes and to read what the page knows (utterance, reward, done, the DOM); lockstep
actions are injected as X input too (XTEST), the same path a VNC client's events take.

Env ids are MiniWoB++'s own: ``miniwob/click-test-2-v1`` serves the page
``click-test-2.html`` that the ``miniwob`` package ships; Gymnasium's ``module:EnvId`` form
(``miniwob:miniwob/click-test-2-v1``) names the same task.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gymlab.rewarder import protocol as p
from gymlab.rewarder.backend import EpisodeStart, RequestRejected, Transition
from gymlab.rewarder.spaces import action_from_json, space_to_json
from gymlab.runtime.backend import Backend, Display, register
from gymlab.runtime.config import ConfigError, RuntimeConfig
from gymlab.runtime.envs import split_env_id

if TYPE_CHECKING:
    import gymnasium

log = logging.getLogger("gymlab.runtime")

PREFIX = "miniwob/"
#: MiniWoB++'s task area (the top-left of every task page), in pixels.
TASK_WIDTH, TASK_HEIGHT = 160, 210
#: What a lockstep action does (``action_type``), in order.
ACTION_TYPES = ("NONE", "CLICK_COORDS", "CLICK_ELEMENT", "PRESS_KEY", "TYPE_TEXT")
MAX_TEXT = 64
MAX_KEY = 32
#: Element refs MiniWoB++ hands out count up from 1 per page.
MAX_REF = 100_000
#: How long a task page may take to be ready after an episode starts.
TASK_READY_TIMEOUT = 10.0
#: The most DOM elements one observation carries (a page may be made to have millions).
MAX_ELEMENTS = 500

CHROMIUM = os.environ.get("GYMLAB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("GYMLAB_CHROMEDRIVER", "/usr/bin/chromedriver")

# Without these, Chromium reaches out to Google's services on every start: a runtime
# must talk to nobody but its own page.
_CHROMIUM_FLAGS = (
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers' /dev/shm is small
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--noerrdialogs",
    "--password-store=basic",
)


def user_namespaces_work() -> bool:
    """Whether this process may create a user namespace (Chromium's sandbox needs one).

    Tried in a child process, so that this one stays as it is. Docker's default seccomp
    profile, for one, refuses it to processes without CAP_SYS_ADMIN.
    """
    import ctypes

    clone_newuser = 0x10000000
    pid = os.fork()
    if pid == 0:  # the child: try, report by exit code, never return into Python
        libc = ctypes.CDLL(None, use_errno=True)
        os._exit(0 if libc.unshare(clone_newuser) == 0 else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def no_sandbox_reason() -> str | None:
    """Why Chromium must run with ``--no-sandbox`` here, or None when its sandbox works."""
    if os.geteuid() == 0:
        return "running as root (Chromium's sandbox refuses root; hosts run runtimes unprivileged)"
    if not user_namespaces_work():
        return (
            "no user namespaces for this process (e.g. a container's seccomp profile); the "
            "runtime's own confinement (unprivileged user, no capabilities) is what isolates it"
        )
    return None


def task_id(env_id: str) -> str:
    """A web task's id in MiniWoB++'s own form: ``miniwob:miniwob/x-v1`` -> ``miniwob/x-v1``."""
    return split_env_id(env_id)[1]


def is_browser_env(env_id: str) -> bool:
    """Whether ``env_id`` is served by a browser runtime (either form of a task's id)."""
    return task_id(env_id).startswith(PREFIX)


def task_page(env_id: str) -> Path:
    """The page of ``miniwob/<task>-v1``; :class:`ConfigError` when there is none."""
    task = task_id(env_id).removeprefix(PREFIX).rsplit("-v", 1)[0]
    try:
        import miniwob
    except ImportError:
        raise ConfigError(
            f"cannot serve {env_id!r}: the miniwob package is not installed "
            "(pip install 'gymlab[browser]')"
        ) from None
    page = Path(miniwob.__file__).parent / "html" / "miniwob" / f"{task}.html"
    if not task or not page.is_file():
        raise ConfigError(f"cannot serve {env_id!r}: MiniWoB++ has no task {task!r}")
    return page


def action_space() -> gymnasium.spaces.Dict:
    """A lockstep action: ``action_type`` (an index into :data:`ACTION_TYPES`) and its arguments.

    ``coords`` are display pixels for CLICK_COORDS, ``ref`` an element's ref (from the
    observation) for CLICK_ELEMENT, ``key`` an X keysym name for PRESS_KEY (``Return``,
    ``a``), ``text`` what TYPE_TEXT types; the fields an action type does not use are ignored.
    """
    import numpy as np
    from gymnasium import spaces

    printable = string.printable.replace("\x0b", "").replace("\x0c", "")
    return spaces.Dict(
        {
            "action_type": spaces.Discrete(len(ACTION_TYPES)),
            "coords": spaces.Box(
                low=np.zeros(2, np.float32),
                high=np.array([TASK_WIDTH - 1, TASK_HEIGHT - 1], np.float32),
                dtype=np.float32,
            ),
            "ref": spaces.Discrete(MAX_REF),
            "key": spaces.Text(MAX_KEY, min_length=0, charset=printable),
            "text": spaces.Text(MAX_TEXT, min_length=0, charset=printable),
        }
    )


@dataclass(frozen=True)
class PageState:
    """What the task page reports: done, its reward (time-scaled and raw), and why."""

    done: bool
    reward: float
    raw_reward: float
    reason: Any


def _elements(node: dict[str, Any], out: list[dict[str, Any]]) -> None:
    """Flatten MiniWoB++'s DOM tree into elements with display coordinates."""
    if len(out) >= MAX_ELEMENTS:
        return
    out.append(
        {
            "ref": node.get("ref"),
            "tag": node.get("tag"),
            "text": node.get("text", ""),
            "id": node.get("id", ""),
            "classes": node.get("classes", ""),
            "left": node.get("left"),
            "top": node.get("top"),
            "width": node.get("width"),
            "height": node.get("height"),
        }
    )
    for child in node.get("children", []):
        _elements(child, out)


class XInput:
    """Real X input on the runtime's display (XTEST), for lockstep actions."""

    def __init__(self, display_name: str, xauthority: Path | None) -> None:
        from Xlib.ext import xtest  # noqa: F401  (loads the extension's requests)

        from gymlab.runtime.xwindow import open_display

        self.display = open_display(display_name, xauthority)
        if not self.display.has_extension("XTEST"):
            raise ConfigError(f"display {display_name} has no XTEST extension")

    def click(self, x: float, y: float) -> None:
        from Xlib import X
        from Xlib.ext import xtest

        xtest.fake_input(self.display, X.MotionNotify, x=int(x), y=int(y))
        xtest.fake_input(self.display, X.ButtonPress, 1)
        xtest.fake_input(self.display, X.ButtonRelease, 1)
        self.display.sync()

    def key(self, name: str) -> None:
        """Press and release the key named ``name`` (X keysym name or one character)."""
        from Xlib import XK, X
        from Xlib.ext import xtest

        from gymlab.rfb.keysyms import keysym

        try:
            sym = keysym(name)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"cannot press {name!r}: {exc}") from None
        code = self.display.keysym_to_keycode(sym)
        if code == 0:
            raise ValueError(f"cannot press {name!r}: the display's keyboard has no such key")
        shifted = self.display.keycode_to_keysym(code, 0) != sym
        shift = self.display.keysym_to_keycode(XK.XK_Shift_L)
        if shifted:
            xtest.fake_input(self.display, X.KeyPress, shift)
        xtest.fake_input(self.display, X.KeyPress, code)
        xtest.fake_input(self.display, X.KeyRelease, code)
        if shifted:
            xtest.fake_input(self.display, X.KeyRelease, shift)
        self.display.sync()

    def type(self, text: str) -> None:
        for char in text:
            self.key("Return" if char == "\n" else char)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.display.close()


class Chromium:
    """Chromium with the page on the display at (0, 0), its viewport ``width`` x ``height``."""

    def __init__(
        self,
        url: str,
        display_name: str,
        xauthority: Path | None,
        workdir: Path,
        width: int = TASK_WIDTH,
        height: int = TASK_HEIGHT,
    ) -> None:
        self.url, self.width, self.height = url, width, height
        self._display_name, self._xauthority, self._workdir = display_name, xauthority, workdir
        self.driver: Any = None

    def start(self) -> None:
        for exe in (CHROMIUM, CHROMEDRIVER):
            if shutil.which(exe) is None:
                raise ConfigError(
                    f"browser runtimes need {exe} (Debian: chromium, chromium-driver)"
                )
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        from gymlab.procfs import pdeathsig_preexec

        home = self._workdir / "chromium"
        home.mkdir(mode=0o700, exist_ok=True)
        env = {
            "DISPLAY": self._display_name,
            "HOME": str(home),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }
        if self._xauthority is not None:
            env["XAUTHORITY"] = str(self._xauthority)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (
            *_CHROMIUM_FLAGS,
            f"--user-data-dir={home / 'profile'}",
            f"--app={self.url}",
            "--window-position=0,0",
            f"--window-size={self.width},{self.height}",
        ):
            options.add_argument(flag)
        why = no_sandbox_reason()
        if why is not None:
            log.warning("Chromium runs without its sandbox: %s", why)
            options.add_argument("--no-sandbox")
        import signal

        service = Service(
            executable_path=CHROMEDRIVER,
            env=env,
            log_output=str(self._workdir / "chromedriver.log"),
            popen_kw={"preexec_fn": pdeathsig_preexec(signal.SIGTERM)},
        )
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.set_script_timeout(TASK_READY_TIMEOUT)
        self._fit_viewport()

    def _fit_viewport(self) -> None:
        """Move the window so that its viewport, not its frame, starts at (0, 0)."""
        outer_w, outer_h, inner_w, inner_h = self.script(
            "return [window.outerWidth, window.outerHeight, window.innerWidth, window.innerHeight]"
        )
        frame_w, frame_h = outer_w - inner_w, outer_h - inner_h
        self.driver.set_window_rect(
            x=-frame_w, y=-frame_h, width=self.width + frame_w, height=self.height + frame_h
        )
        size = self.script("return [window.innerWidth, window.innerHeight]")
        if list(size) != [self.width, self.height]:
            log.warning("Chromium's viewport is %sx%s, not %sx%s", *size, self.width, self.height)

    def script(self, source: str, *args: Any) -> Any:
        return self.driver.execute_script(source, *args)

    def settle(self) -> None:
        """Return once the page has drawn two frames since now (its changes are on screen)."""
        self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "requestAnimationFrame(() => requestAnimationFrame(() => done(true)));"
        )

    def quit(self) -> None:
        if self.driver is not None:
            with contextlib.suppress(Exception):
                self.driver.quit()
            self.driver = None


class MiniWoBPage:
    """One MiniWoB++ task page in :class:`Chromium`: episodes, state and observations."""

    def __init__(self, chromium: Chromium) -> None:
        self.chromium = chromium
        chromium.script("return core.endEpisode(0);")  # the page starts on its sync screen

    def begin(self, seed: int | None) -> None:
        """Start an episode (ending one that runs) and wait until the task is ready."""
        script = self.chromium.script
        if not script("return WOB_DONE_GLOBAL;"):
            script("core.endEpisode(0);")
        if seed is not None:
            script(f"Math.seedrandom({json.dumps(str(seed))});")
        script("core.startEpisodeReal();")
        deadline = time.monotonic() + TASK_READY_TIMEOUT
        while not script("return WOB_TASK_READY;"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the task page was not ready within {TASK_READY_TIMEOUT:g} s")
            time.sleep(0.01)
        self.chromium.settle()

    def state(self) -> PageState:
        return self.snapshot(with_page=False)[0]

    def observation(self) -> dict[str, Any]:
        """The utterance and the page's elements with their display coordinates."""
        return self.snapshot()[1]

    def snapshot(self, with_page: bool = True) -> tuple[PageState, dict[str, Any]]:
        """The page's state and (``with_page``) its observation, in one round trip."""
        done, reward, raw, reason, utterance, root = self.chromium.script(
            "const page = arguments[0];"
            "return [WOB_DONE_GLOBAL, WOB_REWARD_GLOBAL, WOB_RAW_REWARD_GLOBAL,"
            " WOB_REWARD_REASON, page ? core.getUtterance() : null,"
            " page ? core.getDOMInfo() : null];",
            with_page,
        )
        state = PageState(bool(done), float(reward or 0.0), float(raw or 0.0), reason)
        if isinstance(utterance, dict):
            utterance = utterance.get("utterance", "")
        elements: list[dict[str, Any]] = []
        if isinstance(root, dict):
            _elements(root, elements)
        return state, {"utterance": str(utterance or ""), "elements": elements}

    def element_center(self, ref: int) -> tuple[float, float]:
        for element in self.observation()["elements"]:
            if element["ref"] == ref:
                return (
                    element["left"] + element["width"] / 2,
                    element["top"] + element["height"] / 2,
                )
        raise ValueError(f"no element with ref {ref} on the page")


@register()
class BrowserBackend(Backend):
    """A MiniWoB++ task page in Chromium on the runtime's display.

    Lockstep: a step carries one :func:`action_space` action, injected as X input; the
    result comes once the page has settled, with the page's reward (at the episode's end),
    the utterance and the reward's reason in ``info``. Real time: the agent's VNC input
    reaches Chromium directly; each tick reads the page, and an episode's end is a
    transition (the server then starts the next episode). Every episode start gives the
    utterance as its text and the page (utterance, elements with display coordinates) as
    its observation; lockstep steps give the page too.
    """

    frame_size = (TASK_WIDTH, TASK_HEIGHT)
    shows_cursor = False  # Chromium draws its own pointer

    def __init__(self, config: RuntimeConfig, env_id: str) -> None:
        super().__init__(config, env_id)
        self.space = action_space()
        self.chromium: Chromium | None = None
        self.page: MiniWoBPage | None = None
        self.xinput: XInput | None = None

    @classmethod
    def serves(cls, env_id: str) -> bool:
        return is_browser_env(env_id)

    @classmethod
    def prepare(cls, config: RuntimeConfig) -> BrowserBackend:
        """Check that the task's page exists and that nothing Gymnasium-only was given."""
        given = [
            flag
            for flag, value in (
                ("--import", config.imports),
                ("--env-kwargs", config.env_kwargs),
                ("--keymap", config.keymap_file),
            )
            if value
        ]
        if given:
            raise ConfigError(
                f"{config.env_id} is a web task: {', '.join(given)} does not apply "
                "(the browser takes real input, its page is the task)"
            )
        task_page(config.env_id)
        return cls(config, task_id(config.env_id))

    async def attach(self, display: Display) -> None:
        """Start Chromium on the display and the first episode's page."""
        self.chromium = Chromium(
            task_page(self.env_id).as_uri(), display.name, display.xauthority, display.workdir
        )
        await self.off_loop(self._open, display)
        await self.off_loop(self._begin_page, None)
        self.frame += 1

    def _open(self, display: Display) -> None:
        assert self.chromium is not None
        self.chromium.start()
        self.page = MiniWoBPage(self.chromium)
        self.xinput = XInput(display.name, display.xauthority)

    def close(self) -> None:
        super().close()
        if self.xinput is not None:
            self.xinput.close()
        if self.chromium is not None:
            self.chromium.quit()

    @property
    def _page(self) -> MiniWoBPage:
        if self.page is None:
            raise RuntimeError("the browser has not started")
        return self.page

    # results

    def describe_extras(self) -> dict[str, Any]:
        return {"action_space": space_to_json(self.space)}

    async def switch(self, env_id: str, seed: int | None) -> None:
        if not is_browser_env(env_id):
            raise RequestRejected(
                f"this runtime serves web tasks ({PREFIX}...), not {env_id!r}; "
                "start a runtime for it instead"
            )
        try:
            url = task_page(env_id).as_uri()
        except ConfigError as exc:
            raise RequestRejected(str(exc)) from None
        await self.off_loop(self._load, url)
        self.env_id = task_id(env_id)
        log.info("switched environment to %s", self.env_id)

    async def reset(self, seed: int | None) -> EpisodeStart:
        page = await self.off_loop(self._begin_page, seed)
        self.frame += 1
        log.debug("episode started: %s", page["utterance"])
        return EpisodeStart(frame=self.frame, observation=page, text=page["utterance"])

    async def act(self, action: Any) -> Transition:
        try:
            decoded = action_from_json(self.space, action)
        except ValueError as exc:
            raise RequestRejected(str(exc)) from None
        try:
            state, page = await self.off_loop(self._act, decoded)
        except ValueError as exc:  # a key the display cannot type, a ref not on the page
            raise RequestRejected(str(exc)) from None
        return self._transition(state, page)

    async def tick(self) -> Transition | None:
        """Real time: read the page; an episode that ended is a transition."""
        state = await self.off_loop(self._page.state)
        if not state.done:
            return None
        page = await self.off_loop(self._page.observation)
        transition = self._transition(state, page)
        transition.info["action"] = None
        return transition

    # internals

    def _load(self, url: str) -> None:
        assert self.chromium is not None
        self.chromium.driver.get(url)
        self.page = MiniWoBPage(self.chromium)

    def _begin_page(self, seed: int | None) -> dict[str, Any]:
        self._page.begin(seed)
        return self._page.observation()

    def _act(self, action: dict[str, Any]) -> tuple[PageState, dict[str, Any]]:
        xinput = self.xinput
        assert xinput is not None and self.chromium is not None
        kind = ACTION_TYPES[int(action["action_type"])]
        if kind == "CLICK_COORDS":
            xinput.click(*action["coords"])
        elif kind == "CLICK_ELEMENT":
            xinput.click(*self._page.element_center(int(action["ref"])))
        elif kind == "PRESS_KEY":
            xinput.key(action["key"])
        elif kind == "TYPE_TEXT":
            xinput.type(action["text"])
        self.chromium.settle()
        return self._page.snapshot()

    def _transition(self, state: PageState, page: dict[str, Any]) -> Transition:
        self.frame += 1
        return Transition(
            reward=state.reward if state.done else 0.0,
            terminated=state.done,
            truncated=False,
            frame=self.frame,
            info={
                "utterance": page["utterance"],
                "raw_reward": state.raw_reward if state.done else 0.0,
                "reason": p.to_jsonable(state.reason) if state.done else None,
            },
            observation=page,
        )
