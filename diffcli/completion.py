"""Shell completion of the file's own names: after --set its inputs (as `name=`), after --of every
variable, after --wrt its inputs. Typer calls these with what has been typed so far; the FILE typed
before the option is read and parsed, and any problem with it completes nothing (completion must
never print an error into the user's shell)."""

MAX_BYTES = 4 * 2**20  # completion is typed live: a huge file is not worth the wait


def _program(ctx):
    # Click leaves FILE unparsed when the option being completed still lacks its value: then it
    # is among the words not yet taken
    path = ctx.params.get("file") or next((word for word in ctx.args if not word.startswith("-")), None)
    if not path or path == "-":
        return None
    try:
        from .program import parse, read_source

        with open(path, "rb") as file:
            data = file.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            return None
        return parse(read_source(data, path), path)
    except Exception:  # noqa: BLE001 - an unreadable or broken file: nothing to offer
        return None


def _complete(incomplete: str, names, suffix: str = "") -> list[str]:
    """`a=2,o` completes the last item of a comma list: `a=2,o=`."""
    head, comma, last = incomplete.rpartition(",")
    prefix = head + comma
    return [prefix + name + suffix for name in names if name.startswith(last)]


def set_names(ctx, incomplete: str) -> list[str]:
    program = _program(ctx)
    if program is None or "=" in incomplete.rpartition(",")[2]:
        return []
    return _complete(incomplete, program.inputs, "=")


def variable_names(ctx, incomplete: str) -> list[str]:
    program = _program(ctx)
    return [] if program is None else _complete(incomplete, program.names)


def input_names(ctx, incomplete: str) -> list[str]:
    program = _program(ctx)
    return [] if program is None else _complete(incomplete, program.inputs)
