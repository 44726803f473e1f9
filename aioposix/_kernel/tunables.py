"""The sysctl tunables of the AIO kernel (vfs_aio.c's SYSCTL_INT block).

Each tunable is a record: its sysctl name, default, unit and the reason it
exists.  `Sysctl` is the mapping users see as ``aioposix.sysctl``; it holds
the writable values and reads the live counters from a callback, so nothing
deep inside the library reads a global: the kernel passes values down.

Persistent settings, as sysctl.conf is to a FreeBSD kernel: when the mapping
is made (at import) it starts from the defaults, then applies the file named
by the environment variable AIOPOSIX_SYSCTL_FILE (``name = value`` lines,
``#`` and ``;`` comments), then AIOPOSIX_SYSCTL (``name=value,name=value``).
A bad entry is skipped with a RuntimeWarning that names it; the rest apply.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass

Value = int | float | str


@dataclass(frozen=True, slots=True)
class Tunable:
    name: str
    default: Value
    unit: str
    reason: str
    minimum: float = 0
    choices: tuple[str, ...] = ()
    maximum: float = float("inf")


TUNABLES: tuple[Tunable, ...] = (
    Tunable("vfs.aio.max_aio_procs", 32, "threads",
            "most worker daemons the pool may run", 1),
    Tunable("vfs.aio.target_aio_procs", 4, "threads",
            "workers kept alive once the pool is used, even when idle", 0),
    Tunable("vfs.aio.max_aio_queue", 1024, "jobs",
            "process-wide jobs not yet reaped; past it submits fail with EAGAIN", 1),
    Tunable("vfs.aio.max_aio_per_proc", 32, "jobs",
            "jobs of one context running in the pool at once (new contexts copy it)", 1),
    Tunable("vfs.aio.max_aio_queue_per_proc", 256, "jobs",
            "jobs of one context not yet reaped; past it EAGAIN (new contexts copy it)", 1),
    Tunable("vfs.aio.max_buf_aio", 16, "jobs",
            "kernel-submitted jobs of one context in flight (new contexts copy it)", 1),
    Tunable("vfs.aio.aiod_lifetime", 30.0, "seconds",
            "an idle worker exits after this while more than target_aio_procs exist", 0.001),
    Tunable("vfs.aio.aiod_timeout", 10.0, "seconds",
            "how long a rundown waits for running jobs before abandoning them "
            "(at most an hour: a rundown never waits forever)", 0.0, maximum=3600.0),
    Tunable("vfs.aio.inline", 1, "bool",
            "try page-cache hits inline with RWF_NOWAIT before handing a job on", 0),
    Tunable("vfs.aio.backend", "auto", "name",
            "file jobs that cannot finish inline: auto, threads or io_uring "
            "(AIOPOSIX_BACKEND overrides; new contexts copy it)", 0,
            ("auto", "threads", "io_uring")),
)

COUNTERS: dict[str, str] = {
    "vfs.aio.backend_active": "the backend new contexts use for file jobs",
    "vfs.aio.io_uring": "whether io_uring works here, or why not",
    "vfs.aio.num_aio_procs": "worker daemons alive now",
    "vfs.aio.num_queue_count": "process-wide jobs submitted and not yet reaped",
    "vfs.aio.num_buf_aio": "kernel-submitted (io_uring) jobs in flight",
    "p1003_1b.aio_listio_max": "most entries of lio_listio and aio_suspend "
                               "(= vfs.aio.max_aio_queue_per_proc)",
}

_BY_NAME = {t.name: t for t in TUNABLES}


def describe(name: str) -> str:
    """One line on what ``name`` means, for ``aioposix sysctl``."""
    if name in _BY_NAME:
        t = _BY_NAME[name]
        return f"{t.reason} ({t.unit})"
    return COUNTERS[name] + " (read-only)"


def _checked(tunable: Tunable, value: object) -> Value:
    if isinstance(tunable.default, str):
        if not isinstance(value, str):
            raise TypeError(f"{tunable.name} takes a string, not {type(value).__name__}")
        if value not in tunable.choices:
            raise ValueError(f"{tunable.name} must be one of {', '.join(tunable.choices)}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{tunable.name} takes a number, not {type(value).__name__}")
    if isinstance(tunable.default, int) and not isinstance(value, int):
        raise TypeError(f"{tunable.name} takes a whole number")
    if value < tunable.minimum or value != value:
        raise ValueError(f"{tunable.name} must be at least {tunable.minimum}")
    if value > tunable.maximum:
        raise ValueError(f"{tunable.name} must be at most {tunable.maximum}")
    return type(tunable.default)(value)


# -- persistent settings (AIOPOSIX_SYSCTL_FILE, AIOPOSIX_SYSCTL) ----------------

ENV_SETTINGS = "AIOPOSIX_SYSCTL"  # name=value,name=value
ENV_FILE = "AIOPOSIX_SYSCTL_FILE"  # a sysctl.conf-style file


def parse_value(name: str, raw: str) -> Value:
    """``raw`` (text) as the type of tunable ``name``, checked: KeyError for an
    unknown name, PermissionError for a counter, ValueError or TypeError for
    a bad value."""
    if name in COUNTERS:
        raise PermissionError(f"{name} is read-only")
    tunable = _BY_NAME[name]
    raw = raw.strip()
    if isinstance(tunable.default, str):
        return _checked(tunable, raw)
    kind = type(tunable.default)
    try:
        number = float(raw) if kind is float else int(raw, 0 if raw[1:2].isalpha() else 10)
    except ValueError:
        raise ValueError(f"{name} takes {kind.__name__}, not {raw!r}") from None
    return _checked(tunable, number)


def parse_conf(text: str) -> list[tuple[str, str]]:
    """The ``(name, raw value)`` pairs of a sysctl.conf-style text; a line
    without ``=`` comes back with the whole line as its name and no value."""
    pairs = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if line:
            name, sep, raw = line.partition("=")
            pairs.append((name.strip(), raw.strip() if sep else ""))
    return pairs


def parse_env(text: str) -> list[tuple[str, str]]:
    """The ``(name, raw value)`` pairs of ``name=value,name=value``."""
    return parse_conf(text.replace(",", "\n"))


def persistent_settings(environ: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """``(where, name, raw)`` from the file, then the variable (later wins)."""
    found: list[tuple[str, str, str]] = []
    path = environ.get(ENV_FILE)
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                found += [(path, n, v) for n, v in parse_conf(f.read())]
        except OSError as exc:
            _warn_setting(f"{ENV_FILE}={path!r} cannot be read ({exc.strerror})")
    found += [(ENV_SETTINGS, n, v) for n, v in parse_env(environ.get(ENV_SETTINGS, ""))]
    return found


def startup_values(environ: Mapping[str, str] = os.environ) -> dict[str, Value]:
    """The defaults with the persistent settings applied; bad ones warned of and skipped."""
    values: dict[str, Value] = {t.name: t.default for t in TUNABLES}
    for where, name, raw in persistent_settings(environ):
        try:
            values[name] = parse_value(name, raw)
        except KeyError:
            _warn_setting(f"{where}: unknown sysctl name {name!r}, ignored")
        except (PermissionError, ValueError, TypeError) as exc:
            _warn_setting(f"{where}: {exc} (ignored)")
    return values


def _warn_setting(message: str) -> None:
    warnings.warn(f"aioposix: {message}", RuntimeWarning, stacklevel=3)


# -- the mapping ------------------------------------------------------------------


class Sysctl(MutableMapping[str, Value]):
    """``aioposix.sysctl``: the tunables by their FreeBSD names, and counters.

    Writing a counter raises PermissionError, an unknown name KeyError, and a
    bad value ValueError or TypeError.  Removing a name is not possible.
    """

    def __init__(self, counters: Callable[[], dict[str, Value]],
                 changed: Callable[[], None] = lambda: None) -> None:
        self._startup = startup_values()  # the defaults and the persistent settings
        self._values: dict[str, Value] = dict(self._startup)
        self._counters = counters
        self._changed = changed  # told after every write, for values cached on hot paths

    def __getitem__(self, name: str) -> Value:
        if name in self._values:
            return self._values[name]
        if name == "p1003_1b.aio_listio_max":
            return self._values["vfs.aio.max_aio_queue_per_proc"]
        if name in COUNTERS:
            return self._counters()[name]
        raise KeyError(name)

    def __setitem__(self, name: str, value: Value) -> None:
        if name in COUNTERS:
            raise PermissionError(f"{name} is read-only")
        if name not in _BY_NAME:
            raise KeyError(name)
        self._values[name] = _checked(_BY_NAME[name], value)
        self._changed()

    def __delitem__(self, name: str) -> None:
        if name in self:
            raise PermissionError(f"{name} cannot be removed")
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        yield from self._values
        yield from COUNTERS

    def __len__(self) -> int:
        return len(self._values) + len(COUNTERS)

    def __contains__(self, name: object) -> bool:
        return name in self._values or name in COUNTERS

    def get_int(self, name: str) -> int:
        """A whole-number tunable, typed for the library's own use."""
        value = self._values[name]
        assert isinstance(value, int)
        return value

    def get_float(self, name: str) -> float:
        value = self._values[name]
        assert isinstance(value, int | float)
        return float(value)

    def reset(self) -> None:
        """Back to the values the process started with: the defaults and the
        persistent settings (AIOPOSIX_SYSCTL_FILE, AIOPOSIX_SYSCTL).  Tests use this."""
        self._values = dict(self._startup)
        self._changed()

    def __repr__(self) -> str:
        return f"Sysctl({dict(self.items())!r})"
