"""What every script under ``scripts/`` shares: its entry point with one-line errors, and a workdir that
is replaced whole.

A script reads like Flax's ``main.py``: flags (``--config`` a Python config file, locked, so that a
mistyped ``--config.<field>`` is an error; ``--workdir``), then one call into :mod:`lecture6.experiment`.
``run(main)`` is ``absl.app.run(main)`` that turns a bad flag, an unknown field, a missing config file or
a bad value into one line on stderr and a non-zero exit, instead of a traceback. It first joins the
other processes of the run, if any (:func:`lecture6.distributed.initialize`: under ``python -m
lecture6.launch`` or on a cluster), so every script runs unchanged as one process or many; then
:func:`atomic_workdir` writes in process 0 only. Compiled programs are kept in a persistent compilation
cache (:func:`use_compilation_cache`), so a rerun of a script skips most of XLA's compiling.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable

# ---------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------


def load_config_file(path: str):
    """``get_config()`` of a Python config file (what ``--config FILE`` loads)."""
    if not os.path.isfile(path):
        raise ValueError(f"config file {path!r} not found")
    spec = importlib.util.spec_from_file_location("_lecture6_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def _unknown_field(exc: BaseException, argv: list[str]) -> str:
    """One line from ml_collections' error for an unknown ``--config.<field>`` (a KeyError in an
    AttributeError whose text is ``'field'`` and maybe a ``Did you mean ...?`` line)."""
    while exc.args and isinstance(exc.args[0], BaseException):
        exc = exc.args[0]
    first, *hint = str(exc.args[0] if exc.args else exc).splitlines()
    field = first.strip("'")
    given = [a for a in argv if a.split("=")[0] == f"--config.{field}"]
    return " ".join([f"unknown config field config.{field}", *(f"(given {a!r})" for a in given[:1]),
                     "-- the config file has no such field.", *hint])


def _parse_flags(argv: list[str], default_config: str) -> list[str]:
    """absl's flag parsing, every failure one line: a mistyped value, an unknown field, a missing file."""
    from absl import flags

    if not any(re.match(r"^--?config(=|$)", a) for a in argv[1:]):
        argv = [argv[0], f"--config={default_config}", *argv[1:]]  # parsed here, where errors are caught
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as exc:  # a mistyped value: absl names the flag and the value
        sys.exit(f"error: {exc}")
    except (AttributeError, KeyError) as exc:  # ml_collections: a --config.<field> the locked config lacks
        sys.exit(f"error: {_unknown_field(exc, argv)}")
    try:
        flags.FLAGS.config.keys()
    except OSError:  # ml_collections defers a failed load to the first access
        sys.exit(f"error: config file {flags.FLAGS['config'].config_filename!r} not found or not loadable")
    return rest


CACHE_DIR = os.path.join(".cache", "jax")  # under the repository root; git-ignored


# JAX keeps only programs that took at least 1 s to compile; the XOR study's six took 0.6-0.8 s each, so a
# rerun compiled them again (`scripts/xor_study.py` rerun, start to exit: 7.8 s at 1 s, 5.9 s at 0.2 s).
MIN_CACHED_COMPILE_SECONDS = 0.2


def use_compilation_cache(path: str) -> str:
    """Keep compiled programs in JAX's persistent compilation cache at ``path``, unless a cache directory
    is set already (``JAX_COMPILATION_CACHE_DIR``, or ``jax.config``); returns the directory in use.
    Programs that took at least :data:`MIN_CACHED_COMPILE_SECONDS` to compile are kept, unless
    ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` says otherwise."""
    import jax

    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_CACHED_COMPILE_SECONDS)
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    jax.config.update("jax_compilation_cache_dir", path)
    return path


def run(main: Callable[[list[str]], None], default_config: str, *,
        before_jax: Callable[[], object] | None = None) -> None:
    """``absl.app.run(main)`` for a script whose ``--config`` flag (default ``None``) falls back to
    ``default_config``, with one-line errors: the flags (:func:`_parse_flags`), and a ``ValueError`` (a
    bad config value, bad data) or :class:`lecture6.runs.TrainingDiverged` raised by ``main``.
    ``before_jax()``, if given, runs once the flags are parsed and before JAX starts a backend (e.g.
    :func:`lecture6.sharding.split_host_cpu`)."""
    from absl import app, logging

    from lecture6.runs import TrainingDiverged

    def checked_main(argv):
        from lecture6 import distributed

        logging.set_verbosity(logging.WARNING)  # keep JAX's backend INFO lines out of the progress output
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        if before_jax is not None:
            before_jax()
        distributed.initialize()  # before any JAX computation; does nothing outside a launch or cluster
        repo = os.path.dirname(os.path.dirname(os.path.abspath(default_config)))  # configs/ is in the repo root
        use_compilation_cache(os.path.join(repo, CACHE_DIR))
        if not distributed.is_writer():  # one log, process 0's; errors still reach stderr
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
        try:
            main(argv)
        except (ValueError, TrainingDiverged) as exc:
            sys.exit(f"error: {exc}")
        finally:
            # Python's collections at exit then pass over none of the objects alive now (JAX, SciPy,
            # matplotlib): 0.06 s to exit instead of 0.42 s. Files are closed and written by then.
            gc.freeze()

    app.run(checked_main, flags_parser=lambda argv: _parse_flags(argv, default_config))


# ---------------------------------------------------------------------------------------------------
# A workdir that is never missing
# ---------------------------------------------------------------------------------------------------


def _libc_exchange():
    """The system call that swaps two paths atomically, or ``None``: Linux ``renameat2(RENAME_EXCHANGE)``,
    macOS ``renamex_np(RENAME_SWAP)``."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    except OSError:
        return None
    if hasattr(libc, "renameat2"):
        at_fdcwd, rename_exchange = -100, 2
        return lambda a, b: libc.renameat2(at_fdcwd, a, at_fdcwd, b, rename_exchange)
    if hasattr(libc, "renamex_np"):
        rename_swap = 2
        return lambda a, b: libc.renamex_np(a, b, rename_swap)
    return None


def exchange(a: str, b: str) -> bool:
    """Swap the directories at ``a`` and ``b`` in one step; ``False`` where the system cannot."""
    swap = _libc_exchange()
    if swap is None:
        return False
    if swap(os.fsencode(a), os.fsencode(b)) != 0:
        err = ctypes.get_errno()
        if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not on this file system
            return False
        raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")
    return True


@contextlib.contextmanager
def atomic_workdir(workdir: str):
    """Yield a temporary directory beside ``workdir``; when the block ends it takes ``workdir``'s place.

    At every moment ``workdir`` is either the previous complete run or the new complete one: the new
    directory is swapped in with one system call (``exchange``), and only then is the old one deleted.
    On an exception the temporary directory is removed and ``workdir`` is left as it was. (Where the
    system cannot swap directories, the old one is renamed aside just before the new one is renamed in.)

    With several processes (:mod:`lecture6.distributed`) only process 0 writes ``workdir``: the others
    get a private temporary directory that is deleted when the block ends, so they run the same code.
    """
    from lecture6 import distributed

    if not distributed.is_writer():
        scratch = tempfile.mkdtemp(prefix="lecture6-not-written-")
        try:
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    workdir = os.path.abspath(workdir)
    parent, name = os.path.split(workdir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        if not os.path.exists(workdir):
            os.rename(tmp, workdir)
            return
        swapped = exchange(tmp, workdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # the previous run is still in place
        raise
    if swapped:
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous run
    else:
        old = tempfile.mkdtemp(prefix=f".{name}.old-", dir=parent)
        os.replace(workdir, os.path.join(old, "run"))
        os.replace(tmp, workdir)
        shutil.rmtree(old, ignore_errors=True)


def write_atomically(path: str, text: str) -> str:
    """Write ``text`` to ``path`` whole: a temporary file in the same folder (made if missing), flushed to
    disk, then renamed over ``path``, so a reader sees the old file or the new one, never a part. The
    temporary name is unique to this call (another process may write the same file) and the file gets
    the usual permissions. Returns ``path``."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON with a final newline."""
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
