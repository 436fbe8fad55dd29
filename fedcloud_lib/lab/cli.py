"""``fedcloud lab``: JupyterLab on the runbooks; wired by ``PLUGINS`` in fedcloud_lib/cli.py."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["register", "cmd_lab"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``lab`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "lab", help="JupyterLab on the runbooks (127.0.0.1, token auth, the fedcloud kernel)",
        description="Starts JupyterLab on the runbook directory, bound to 127.0.0.1 with a "
                    "fresh token, prints the URL to open, and stops it (kernels included) on "
                    "Ctrl-C. A runbook opened there shows its parameter form; a plan is applied "
                    "only after you press Confirm under it; runs that apply a plan (or that you "
                    "archive) are recorded in the archive with status 'interactive'.")
    p.add_argument("--dir", metavar="PATH", help="directory to serve (default: the runbooks, "
                   "$FEDCLOUD_RUNBOOKS)")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--operator", help="who works in it (recorded; default: your login)")
    p.add_argument("--keep-outputs", action="store_true", help="save notebooks with their "
                   "outputs (default: saving drops outputs, the archive keeps them)")
    p.set_defaults(func=cmd_lab)
    return p


def cmd_lab(args: argparse.Namespace) -> int:
    from ..config import settings
    from ..context import operator_name
    from .server import Lab

    root = Path(args.dir).resolve() if args.dir else settings().runbooks
    lab = Lab(root=root, port=args.port, operator=operator_name(args.operator),
              strip=not args.keep_outputs)
    stopping = threading.Event()
    t0 = 0.0  # when Ctrl-C came

    def on_term(signum, frame):
        raise KeyboardInterrupt()

    old = signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C must stop the lab even when we were started with SIGINT ignored (a shell's
    # background job, nohup, a CI runner): Python then installs no KeyboardInterrupt
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        lab.start()
        print(f"JupyterLab on {root} as {lab.operator}:\n    {lab.url}\n"
              f"Ctrl-C stops it (and its kernels).", flush=True)
        lab.process.wait()
        print(f"JupyterLab ended by itself (exit {lab.process.returncode})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        stopping.set()
        t0 = time.monotonic()
        print("\nstopping JupyterLab and its kernels ...", file=sys.stderr, flush=True)
        return 0
    finally:
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGINT, old_int)
        lab.stop()
        if stopping.is_set():
            print(f"JupyterLab stopped ({time.monotonic() - t0:.1f} s)", file=sys.stderr,
                  flush=True)
