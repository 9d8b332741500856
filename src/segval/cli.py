"""`segval <command> [overrides]`: dispatch to the Hydra app of each command (:data:`segval.commands.COMMANDS`)."""

from __future__ import annotations

import importlib.util
import sys

from segval.commands import COMMANDS, find_command


def usage() -> str:
    lines = [
        "usage: segval <command> [hydra overrides] [-m] [--cfg job] [--help]",
        "",
        "commands:",
    ]
    for cmd in COMMANDS:
        lines.append(f"  {cmd.name:<16} {cmd.help}")
    lines += [
        "",
        "Each command is a Hydra app: `segval train --help` lists its config groups,",
        "`segval train trainer.max_steps=100 data.root=...` overrides, `-m` sweeps.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        sys.exit(0 if args else 2)
    cmd = find_command(args)
    if cmd is not None:
        app = cmd.load_main()
        # Lightning's DDP launcher starts the other ranks as `python -m <__main__.__spec__.name> <argv[1:]>`:
        # make that the command's module, so they run the same command with the same overrides
        sys.modules["__main__"].__spec__ = importlib.util.find_spec(cmd.module)
        sys.argv = [sys.modules[cmd.module].__file__, *args[len(cmd.words):]]
        app()
        return
    print(f"segval: unknown command {' '.join(args[:2])!r}\n\n{usage()}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
