"""The training code as it was before the rewrite, loaded from git, for benchmarks that compare with it.

``old_lecture6()`` extracts ``lecture6/`` at :data:`REV` (``git archive``) into a temporary directory as
the package ``lecture6_old`` and imports it beside the current ``lecture6``, so one process times both
on the same machine, in the same conditions.
"""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile

REV = "8d10e4e"  # the last commit with the per-cell study and the one-class training program
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Config fields added since :data:`REV`, left out of a config handed to the old code (it refuses unknown
#: fields); each keeps the old behaviour at its default.
NEW_FIELDS = ("progress_every", "data_parallel")


def old_lecture6(module: str = "train"):
    """``lecture6_old.<module>`` from :data:`REV`, or ``None`` (with a note) when git cannot provide it."""
    name = f"lecture6_old.{module}"
    if name in sys.modules:
        return sys.modules[name]
    try:
        tar = subprocess.run(["git", "-C", ROOT, "archive", REV, "lecture6"], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"(old code at {REV} unavailable: {exc}; its rows are skipped)")
        return None
    tmp = tempfile.mkdtemp(prefix="lecture6_old-")
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(tmp, filter="data")
    os.rename(os.path.join(tmp, "lecture6"), os.path.join(tmp, "lecture6_old"))
    for folder, _, files in os.walk(os.path.join(tmp, "lecture6_old")):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                with open(path) as fh:
                    src = fh.read()
                with open(path, "w") as fh:
                    fh.write(src.replace("lecture6.", "lecture6_old.").replace("from lecture6 import",
                                                                               "from lecture6_old import"))
    sys.path.insert(0, tmp)
    return importlib.import_module(name)
