"""Key names -> X keysyms, for KeyEvent messages.

Accepts the names PROTOCOL.md actions use (DOM-style ``"ArrowUp"``, ``"Enter"``), X keysym
names (``"Up"``, ``"Return"``, ``"space"``), any single character (``"a"``, ``"A"``, ``" "``)
and raw integer keysyms. Multi-character names also match case-insensitively.
"""

from __future__ import annotations

_X_NAMES: dict[str, int] = {
    "BackSpace": 0xFF08,
    "Tab": 0xFF09,
    "Return": 0xFF0D,
    "Pause": 0xFF13,
    "Scroll_Lock": 0xFF14,
    "Escape": 0xFF1B,
    "Delete": 0xFFFF,
    "Home": 0xFF50,
    "Left": 0xFF51,
    "Up": 0xFF52,
    "Right": 0xFF53,
    "Down": 0xFF54,
    "Page_Up": 0xFF55,
    "Page_Down": 0xFF56,
    "End": 0xFF57,
    "Insert": 0xFF63,
    "Menu": 0xFF67,
    "Num_Lock": 0xFF7F,
    "KP_Enter": 0xFF8D,
    "Shift_L": 0xFFE1,
    "Shift_R": 0xFFE2,
    "Control_L": 0xFFE3,
    "Control_R": 0xFFE4,
    "Caps_Lock": 0xFFE5,
    "Meta_L": 0xFFE7,
    "Meta_R": 0xFFE8,
    "Alt_L": 0xFFE9,
    "Alt_R": 0xFFEA,
    "Super_L": 0xFFEB,
    "Super_R": 0xFFEC,
    "space": 0x20,
    **{f"F{i}": 0xFFBE + i - 1 for i in range(1, 13)},
}

# DOM KeyboardEvent.key names and other common spellings
_ALIASES: dict[str, str] = {
    "ArrowUp": "Up",
    "ArrowDown": "Down",
    "ArrowLeft": "Left",
    "ArrowRight": "Right",
    "Enter": "Return",
    "Esc": "Escape",
    "Backspace": "BackSpace",
    "Del": "Delete",
    "PageUp": "Page_Up",
    "PageDown": "Page_Down",
    "Shift": "Shift_L",
    "Control": "Control_L",
    "Ctrl": "Control_L",
    "Alt": "Alt_L",
    "Meta": "Meta_L",
    "Super": "Super_L",
    "CapsLock": "Caps_Lock",
    "Space": "space",
}

#: Every multi-character name this module knows, with its keysym.
KEYSYMS: dict[str, int] = {**_X_NAMES, **{a: _X_NAMES[x] for a, x in _ALIASES.items()}}
_FOLDED: dict[str, int] = {name.lower(): value for name, value in KEYSYMS.items()}


def keysym(key: str | int) -> int:
    """Return the X keysym for ``key`` (a name, a single character or an int keysym).

    Raises ``KeyError`` for an unknown name and ``ValueError`` for an int out of range.
    """
    if isinstance(key, int):
        if not 0 <= key <= 0xFFFFFFFF:
            raise ValueError(f"keysym {key} out of the 32-bit range")
        return key
    if len(key) == 1:
        code = ord(key)
        # Latin-1 keysyms equal the code point; others use the Unicode keysym range
        return code if 0x20 <= code <= 0xFF else 0x01000000 + code
    value = KEYSYMS.get(key)
    if value is None:
        value = _FOLDED.get(key.lower())
    if value is None:
        raise KeyError(f"unknown key name {key!r}")
    return value
