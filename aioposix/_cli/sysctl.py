"""``aioposix sysctl``: print the tunables, set them, or write them down.

A process's ``aioposix.sysctl`` starts from the defaults and the persistent
settings (the file named by AIOPOSIX_SYSCTL_FILE, then AIOPOSIX_SYSCTL; see
``_tunables``).  ``aioposix sysctl NAME=VALUE`` sets the value in its own
process only, which then exits: it says so.  ``--write`` instead records the
settings in the file named by AIOPOSIX_SYSCTL_FILE (or ``--file``), where
every later process that has the variable set reads them at import.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence
from typing import Any

from aioposix._cli.bench import UsageError
from aioposix._kernel import tunables
from aioposix._kernel.kernel import KERNEL

SYSCTL_HELP = f"""\
Print every tunable and counter of aioposix.sysctl with its meaning, print
the NAMEs given, or set NAME=VALUE.

A setting made here lasts only for this command's own process, which exits
at once: it changes nothing in any other program.  To make a setting last,
either put it in the environment of the programs that use aioposix:

    export {tunables.ENV_SETTINGS}="vfs.aio.max_aio_procs=8,vfs.aio.backend=threads"

or keep it in a file (``name = value`` lines, # comments) named by
{tunables.ENV_FILE}, which `aioposix sysctl --write NAME=VALUE` edits.
Every process reads the file, then the variable, when it imports aioposix.
To run a benchmark with a setting, use `aioposix bench --sysctl NAME=VALUE`."""


def unknown(name: str) -> UsageError:
    close = difflib.get_close_matches(name, list(KERNEL.sysctl), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return UsageError(f"unknown sysctl name: {name}{hint}")


def checked(setting: str) -> tuple[str, tunables.Value]:
    """``NAME=VALUE`` as (the name, the value in its type), or UsageError."""
    name, _, raw = setting.partition("=")
    name = name.strip()
    if name not in KERNEL.sysctl:
        raise unknown(name)
    try:
        return name, tunables.parse_value(name, raw)
    except PermissionError:
        raise UsageError(f"{name} is read-only") from None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"bad value: {exc}") from None


def set_sysctl(setting: str) -> tuple[str, tunables.Value]:
    """Apply ``NAME=VALUE`` in this process: (the name, the old value)."""
    name, value = checked(setting)
    old = KERNEL.sysctl[name]
    KERNEL.sysctl[name] = value
    return name, old


def show(names: Sequence[str]) -> None:
    width = max(len(f"{n}: {KERNEL.sysctl[n]}") for n in names)
    for n in names:
        print(f"{f'{n}: {KERNEL.sysctl[n]}':<{width}}  # {tunables.describe(n)}")


def conf_lines(old: str, settings: dict[str, tunables.Value]) -> str:
    """``old`` (a sysctl.conf text) with each setting replacing its line, or appended."""
    lines, left = [], dict(settings)
    for line in old.splitlines():
        pairs = tunables.parse_conf(line)
        name = pairs[0][0] if pairs else None
        if name in settings:
            if name in left:
                lines.append(f"{name} = {left.pop(name)}")
            continue  # a later duplicate of a name just written
        lines.append(line)
    lines += [f"{n} = {v}" for n, v in left.items()]
    return "\n".join(lines) + "\n"


def write_conf(path: str, settings: dict[str, tunables.Value]) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(conf_lines(old, settings))
    os.replace(tmp, path)


def write_command(args: argparse.Namespace) -> int:
    path = args.file or os.environ.get(tunables.ENV_FILE)
    if not path:
        raise UsageError(f"--write needs a file: set {tunables.ENV_FILE} (or give --file)")
    if not args.names or any("=" not in item for item in args.names):
        raise UsageError("--write takes NAME=VALUE settings")
    settings = dict(checked(item) for item in args.names)
    write_conf(path, settings)
    for name, value in settings.items():
        print(f"{name} = {value}  # written to {path}")
    if os.environ.get(tunables.ENV_FILE) != path:
        note(f"programs read {path} only when {tunables.ENV_FILE}={path} is in their "
             "environment")
    return 0


def note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


def sysctl_command(args: argparse.Namespace) -> int:
    if args.write:
        return write_command(args)
    if not args.names:
        show(list(KERNEL.sysctl))
        return 0
    changed = False
    for item in args.names:
        if "=" in item:
            name, old = set_sysctl(item)
            print(f"{name}: {old} -> {KERNEL.sysctl[name]}")
            changed = True
        elif item not in KERNEL.sysctl:
            raise unknown(item)
        else:
            show([item])
    if changed:
        note("set in this command's own process only, which now exits: no other program "
             f"sees it. To keep a setting, use {tunables.ENV_SETTINGS} or "
             f"`aioposix sysctl --write` (see aioposix sysctl --help)")
    return 0


def sysctl_parser(sub: Any) -> None:
    s = sub.add_parser("sysctl", help="print, set or write down aioposix.sysctl tunables",
                       description=SYSCTL_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("names", nargs="*", metavar="NAME[=VALUE]")
    s.add_argument("-w", "--write", action="store_true",
                   help=f"write the NAME=VALUE settings to the file named by "
                        f"{tunables.ENV_FILE} (or --file), for every later process")
    s.add_argument("--file", metavar="PATH", help="the file --write edits")
    s.set_defaults(func=sysctl_command)
