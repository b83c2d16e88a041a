"""Command-line plumbing of the entry points: config names, default workdirs, short errors.

`python -m hncl_jax.main` names a config either by path (`--config=configs/digits.py`, any
file with a `get_config(arg)`) or, from any folder, by the name of a config shipped in
`hncl_jax.configs` (`--config=digits:smoke`). `resolve_config_spec` turns a name into the
shipped file's path before ml_collections loads it.

Errors a user can fix (a bad config value, a misspelt `--config.<field>`, a config file
that does not exist, data that is not prepared, a workdir that cannot be written, a
non-finite loss) are printed as one or two lines naming what was wrong, without the
traceback; `--verbose` or the environment variable `HNCL_VERBOSE=1` shows it.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence

VERBOSE_ENV = "HNCL_VERBOSE"
# absl's help flags: each prints the usage and ends the process.
HELP_FLAGS = ("--help", "-?", "--helpfull", "--helpshort", "--helpxml", "-help", "-helpfull")
# What a user can act on; anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, OSError, FloatingPointError)


class CommandLineError(Exception):
    """A command line that cannot run: the message says what to change."""


def configs_dir() -> str:
    """The folder of the shipped configs (`hncl_jax.configs`, the checkout's configs/)."""
    from hncl_jax import configs

    return os.path.dirname(os.path.abspath(configs.__file__))


def shipped_configs() -> list[str]:
    """Names of the shipped configs, e.g. ["cifar10", "digits", "synthetic", ...]."""
    return sorted(
        f[:-3] for f in os.listdir(configs_dir()) if f.endswith(".py") and not f.startswith("_")
    )


def resolve_config_spec(spec: str) -> str:
    """Turns `--config`'s value into `<path to a .py file>[:<arg>]`.

    Args:
      spec: a path to a config file (`configs/digits.py`, `/abs/my_config.py`) or the name
        of a shipped config (`digits`, `digits.py`), either optionally followed by
        `:<arg>` (`digits:smoke`).

    Returns:
      `spec` itself when its path names an existing file, else the shipped config's
      absolute path with the same `:<arg>`. `configs/<name>.py` that is not a file here
      (outside the checkout) names the shipped config `<name>`.

    Raises:
      CommandLineError: when the path is not a file and no shipped config has that name.
    """
    path, sep, arg = spec.partition(":")
    if os.path.isfile(os.path.expanduser(path)):
        return os.path.expanduser(path) + sep + arg
    name = path.removesuffix(".py")
    folder, base = os.path.split(os.path.normpath(path))
    if folder == "configs" and base.endswith(".py"):
        # README's `--config=configs/digits.py` outside the checkout (e.g. Colab's
        # /content): the shipped config of that name.
        name = base.removesuffix(".py")
    if name and os.sep not in name and "/" not in name:
        candidate = os.path.join(configs_dir(), name + ".py")
        if os.path.isfile(candidate):
            return candidate + sep + arg
    raise CommandLineError(
        f"--config={spec}: no config file {path!r}. Give the path of a config file, or the "
        f"name of a shipped config: {', '.join(shipped_configs())} (e.g. --config=digits:smoke)."
    )


def default_workdir(spec: str) -> str:
    """`runs/<config name>[_<arg>]` under the current folder, e.g. runs/digits_smoke.

    Rerunning the same command therefore resumes the same run; a `:<arg>` variant (a
    smoke run) gets its own folder because it is a different config.
    """
    path, _, arg = spec.partition(":")
    name = os.path.basename(path).removesuffix(".py")
    if arg:
        name += "_" + re.sub(r"[^A-Za-z0-9.=-]+", "_", arg).strip("_")
    return os.path.join("runs", name)


def flag_value(argv: Sequence[str], name: str) -> str | None:
    """The value of `--name=value` or `--name value` in argv (the last one), else None."""
    value = None
    for i, a in enumerate(argv):
        if a.startswith(f"--{name}="):
            value = a.split("=", 1)[1]
        elif a == f"--{name}" and i + 1 < len(argv):
            value = argv[i + 1]
    return value


def rewrite_config_flag(argv: Sequence[str], name: str = "config") -> list[str]:
    """argv with `--<name>=<spec>` replaced by `--<name>=<resolve_config_spec(spec)>`."""
    out = list(argv)
    for i, a in enumerate(out):
        if a.startswith(f"--{name}="):
            out[i] = f"--{name}=" + resolve_config_spec(a.split("=", 1)[1])
        elif a == f"--{name}" and i + 1 < len(out):
            out[i + 1] = resolve_config_spec(out[i + 1])
    return out


def verbose(argv: Sequence[str] | None = None) -> bool:
    """Whether to show tracebacks: `--verbose` in argv or HNCL_VERBOSE=1."""
    argv = sys.argv if argv is None else argv
    return "--verbose" in argv or os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def _load_config(spec: str):
    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("_hncl_cli_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


def unknown_override(argv: Sequence[str], name: str = "config") -> str | None:
    """A message for the first `--<name>.<field>=...` naming no field of the config, if any.

    Loads the config again (only on the error path) and walks each override's dotted
    path, so the message names the flag and the closest existing field.
    """
    spec = flag_value(argv, name)
    if spec is None:
        return None
    try:
        config = _load_config(spec)
    except Exception:  # the config itself fails: its own error is the one to show
        return None
    for a in argv:
        if not a.startswith(f"--{name}."):
            continue
        field = a[len(name) + 3 :].split("=", 1)[0]
        node, walked = config, []
        for part in field.split("."):
            keys = list(node.keys()) if hasattr(node, "keys") else []
            if part not in keys:
                close = difflib.get_close_matches(part, keys, n=1)
                where = ".".join(walked) or "the config"
                hint = f" Did you mean {'.'.join([*walked, close[0]])}?" if close else ""
                return f"{a}: {where} has no field {part!r}.{hint}"
            node, walked = node[part], [*walked, part]
    return None


def overridden_fields(argv: Sequence[str], prefix: str, name: str = "config") -> list[str]:
    """The fields under `prefix` that `--<name>.<prefix><field>=...` flags set, in order.

    E.g. ["beta"] for `--config.loss.beta=10` and prefix "loss.".
    """
    fields = []
    for a in argv:
        head = f"--{name}.{prefix}"
        if a.startswith(head):
            field = a[len(head) :].split("=", 1)[0]
            if field and field not in fields:
                fields.append(field)
    return fields


def warn_ignored_overrides(argv: Sequence[str], config, name: str = "config") -> list[str]:
    """Warns about `--config.loss.<field>` flags the config's loss does not read.

    `validation.validate_config` warns about every such field whose value differs from
    configs/default.py's; this adds the ones set on the command line to a value equal to
    it (`--config.loss.name=scl --config.loss.beta=10`). Returns the fields warned about.
    """
    import warnings

    from hncl_jax.train import validation

    explicit = overridden_fields(argv, "loss.", name)
    differing = set(validation.ignored_loss_options(config))
    fields = [f for f in validation.ignored_loss_options(config, explicit) if f not in differing]
    if fields:
        warnings.warn(
            validation.ignored_options_message(config, fields),
            validation.IgnoredOptionWarning,
            stacklevel=2,
        )
    return fields


def one_line_warnings() -> None:
    """Prints each Python warning as one line, `warning: <message>` (not with `--verbose`).

    Python's default adds the file, line and source of the `warnings.warn` call, which
    tell a user of the command line nothing.
    """
    import warnings

    if not verbose():
        warnings.formatwarning = lambda message, *args, **kwargs: f"warning: {message}\n"


def config_file_error(
    argv: Sequence[str], name: str = "config", shown: str | None = None
) -> str | None:
    """`--<name>=<spec>: <message>` when the config file's `get_config` raises ValueError.

    ml_collections reports such an error with its traceback flattened into the flag's
    message; loading the config again (only on the error path) gives the message alone,
    e.g. an unknown `:<arg>` with the config's real arguments. `shown`: the flag's value
    as the user typed it (before `rewrite_config_flag`).
    """
    spec = flag_value(argv, name)
    if spec is None:
        return None
    try:
        _load_config(spec)
    except ValueError as e:
        return f"--{name}={shown or spec}: {_one_line(e)}"
    except Exception:
        return None
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}"
    return text


def fail(message: str, code: int = 1, traceback_hint: bool = True) -> None:
    """Prints `error: <message>` (and how to see the traceback) to stderr, exits with `code`."""
    hint = f"\n(--verbose or {VERBOSE_ENV}=1 shows the traceback)"
    hint = hint if traceback_hint and not verbose() else ""
    print(f"error: {message}{hint}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def flags_parser(flag_values, config_flag: str = "config") -> Callable[[list[str]], list[str]]:
    """An absl `app.run(flags_parser=...)` parser with config names and short errors.

    Args:
      flag_values: the `absl.flags.FlagValues` to parse into (usually `flags.FLAGS`).
      config_flag: the name of the `config_flags.DEFINE_config_file` flag.

    Returns:
      a function argv -> remaining argv, which resolves shipped config names, removes
      `--verbose`, and on a bad command line prints one or two lines and exits with 2.
    """

    def parse(argv: list[str]) -> list[str]:
        argv = [a for a in argv if a != "--verbose"]
        typed = flag_value(argv, config_flag)
        try:
            argv = rewrite_config_flag(argv, config_flag)
            return flag_values(argv)
        except SystemExit as e:
            # absl's --help (and --helpfull, --helpshort) print the usage, then exit 1; a
            # help that was asked for succeeded.
            if e.code == 1 and any(a.split("=", 1)[0] in HELP_FLAGS for a in argv[1:]):
                raise SystemExit(0) from None
            raise
        except CommandLineError as e:
            fail(str(e), code=2, traceback_hint=False)
        except Exception as e:
            if verbose():
                raise
            message = unknown_override(argv, config_flag) or config_file_error(
                argv, config_flag, typed
            )
            if message:  # a usage error: its traceback is only ml_collections' internals
                fail(message, code=2, traceback_hint=False)
            fail(_one_line(e).replace("\\n", " ").replace("\n", " "), code=2)
        raise AssertionError("unreachable")

    return parse


def run_main(main: Callable[[], object]) -> None:
    """Calls `main()`, turning the errors a user can fix into `error: ...` lines (exit 1).

    An error with a `headline` attribute (e.g. `validation.WarmStartMismatch`) prints that
    line; its full message, with the details, shows with the traceback under `--verbose`.
    """
    try:
        main()
    except USER_ERRORS as e:
        if verbose():
            raise
        if getattr(e, "headline", None):  # details (e.g. leaf by leaf) only with --verbose
            fail(e.headline)
        fail(f"{type(e).__name__}: {_one_line(e)}" if isinstance(e, OSError) else _one_line(e))


# --------------------------------------------------------------------------- interrupts
_INTERRUPT = {"message": "rerun the same command to start again."}


_EXITING = threading.Lock()


def _exit_for(signum: int) -> None:
    """Prints the interrupt line and ends the process (once, whichever thread comes first)."""
    if not _EXITING.acquire(blocking=False):
        if threading.current_thread() is threading.main_thread():
            threading.Event().wait()  # the other thread is exiting the process
        return
    name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    _flush_quietly()
    line = f"interrupted ({name}): stopped without writing a checkpoint; "
    # A progress bar (or a terminal's prompt) may hold the line: start a fresh one.
    fresh = "\n" if os.isatty(2) or _bar_open() else ""
    os.write(2, (fresh + line + _INTERRUPT["message"] + "\n").encode())
    os._exit(128 + signum)  # the shell's "killed by signal N": 130, 143


def _bar_open() -> bool:
    """Whether a tqdm progress bar is open (it holds stderr's line without a newline)."""
    tqdm = sys.modules.get("tqdm")
    try:
        return bool(tqdm is not None and len(tqdm.tqdm._instances))
    except Exception:  # another tqdm version: no fresh line
        return False


def _on_signal(signum, frame) -> None:
    """The Python-level handler while `exit_on_interrupt` is active (main thread)."""
    _exit_for(signum)


def _deferred(signum: int) -> bool:
    """Whether the handler now installed for `signum` takes the signal itself.

    The trainer's loop (`signals.catch_signals`) marks its handler so once a step has run:
    it then stops at the next step and writes a checkpoint first.
    """
    handler = signal.getsignal(signum)
    signals = getattr(handler, "signals", None)
    return bool(getattr(signals, "deferring", False))


def _flush_quietly() -> None:
    """Flushes stdout and stderr, giving up after half a second (never blocks the exit)."""

    def flush():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass

    t = threading.Thread(target=flush, daemon=True)
    t.start()
    t.join(0.5)


def _watch_signals(read_fd: int) -> None:
    while True:
        try:
            data = os.read(read_fd, 64)
        except InterruptedError:
            continue
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum in (signal.SIGINT, signal.SIGTERM) and not _deferred(signum):
                _exit_for(signum)


def exit_on_interrupt() -> bool:
    """Makes Ctrl-C and SIGTERM end the command at once with one line, at any moment.

    Python raises KeyboardInterrupt wherever the main thread happens to be: inside a
    garbage-collection callback of XLA it is swallowed ("Exception ignored in ...") and
    the run goes on; elsewhere it is a traceback; and while XLA compiles, no Python
    handler runs at all. Here the signal's Python handler prints one line and exits with
    128 + the signal (130 for Ctrl-C, 143 for SIGTERM), raising nothing; and a watcher
    thread woken through `signal.set_wakeup_fd` does the same while the main thread is
    inside native code (in the middle of a compilation). What it leaves is what a kill
    leaves, which a rerun resumes from. A signal ignored when the process started (a
    background job of a script) stays ignored.
    Once the trainer's loop has run a step, its own handler takes the signal instead
    and stops at a step it checkpoints (see `signals.catch_signals`).

    Call it first thing in a command-line entry point; `set_interrupt_message` adds
    what the user should do. Returns False (and changes nothing) off the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _on_signal)
    threading.Thread(
        target=_watch_signals, args=(read_fd,), daemon=True, name="hncl-interrupts"
    ).start()
    # Held pending across a re-execution (`with_interrupts_held`): delivered now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)
    return True


_HELD = {signal.SIGINT, signal.SIGTERM}


def with_interrupts_held(fn: Callable[[], object]) -> None:
    """Calls `fn` with Ctrl-C and SIGTERM held pending, e.g. `runtime.tune_process`.

    A process `fn` re-executes starts with them still held (the signal mask survives
    `execve`), and its `exit_on_interrupt` releases them once its watcher runs, so a
    Ctrl-C during the restart is the same one line, not a traceback.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        fn()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)


def set_interrupt_message(message: str) -> None:
    """What `exit_on_interrupt`'s line tells the user to do (e.g. the workdir to resume)."""
    _INTERRUPT["message"] = message
