"""What the shim is started with: its arguments, the commands it runs, and the exec into it.

The shim (shim.c, or shim.py without a compiler) monitors one container: it holds the
stdio, writes the exit file, applies the restart policy by running RESPAWN_CODE and releases
what an exited container holds by running POST_EXIT_CODE. launch.py and restore.py make the
process tree and then exec the shim from here.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from runtime.container import shimbin
from runtime.container.paths import ContainerPaths

SHIM = str(Path(__file__).with_name("shim.py"))
PROJECT = str(Path(__file__).resolve().parents[2])

# Commands the shim runs with --python (the project's root in argv[2]). Named, not imported:
# both entry points import runtime.api, which sits above this module.
RESPAWN_CODE = "import sys; sys.path.insert(0, sys.argv[2]); from runtime.container.respawn import main; main()"
POST_EXIT_CODE = (
    "import sys; sys.path.insert(0, sys.argv[2]); "
    "from runtime.container.postexit import main; main()"
)


def exec_shim(shim_args: dict) -> None:
    """Replace this process with the shim, handing over the stdio and socket descriptors."""
    # The shim's own stdio: nothing of the caller's terminal or pipes; errors to shim.log.
    null = os.open("/dev/null", os.O_RDWR)
    log = os.open(shim_args["shim_log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    # The container's log exists before the exec (the shim would otherwise create it once
    # running, after run() may have answered): the directory is then left as answered, and
    # a list view taken right after stays valid (runtime/container/listing.py).
    os.close(os.open(shim_args["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    for key in (
        "out_r",
        "out_w",
        "err_r",
        "err_w",
        "pty_sock",
        "in_r",
        "in_w",
        "listen",
        "winsize",
    ):
        if shim_args.get(key) is not None:
            os.set_inheritable(shim_args[key], True)
    binary = shim_args.get("binary")
    if binary:
        a = shim_args
        argv = [
            binary,
            "--pid",
            str(a["pid"]),
            "--log",
            a["log"],
            "--exit-file",
            a["exit_file"],
            "--stop-flag",
            a["stop_flag"],
            "--shim-file",
            a["shim_file"],
            "--tty",
            "1" if a["tty"] else "0",
            "--listen",
            str(a["listen"]),
            "--restart",
            a["restart"]["name"],
            "--max-retries",
            str(a["restart"]["max_retries"]),
            "--restart-count",
            str(a["restart_count"]),
            "--python",
            sys.executable,
            "--project",
            a["project"],
            "--respawn-code",
            RESPAWN_CODE,
            "--caller-cleans",
            a["caller_cleans"],
            "--auto-remove",
            "1" if a["auto_remove"] else "0",
            "--args",
            json.dumps(a),
        ]
        if a["post_exit"]:
            argv += ["--post-exit-code", POST_EXIT_CODE]
        if a["tty"]:
            argv += ["--pty-socket", str(a["pty_sock"]), "--winsize", str(a["winsize"])]
        else:
            argv += ["--out", str(a["out_r"]), "--err", str(a["err_r"])]
        if a.get("in_w") is not None:
            argv += ["--input", str(a["in_w"])]
        os.execv(binary, argv)
    os.execv(sys.executable, [sys.executable, "-I", "-S", SHIM, json.dumps(shim_args)])


def shim_args(rt, rec: dict, paths: ContainerPaths, fds: dict, listen: int) -> dict:
    """What the shim needs: descriptors, files, restart policy and how to respawn."""
    spec = rec["spec"]
    return {
        "cid": rec["id"],
        "log": str(paths.log_file),
        "exit_file": str(paths.exit_file),
        "stop_flag": str(paths.stop_flag),
        "shim_file": str(paths.shim_file),
        "shim_log": str(paths.dir / "shim.log"),
        "tty": spec["tty"],
        "listen": listen,
        **fds,
        "restart": spec["restart"],
        "restart_count": rec.get("restart_count", 0),
        "project": PROJECT,
        "binary": shimbin.ensure(rt.config.root),
        "config": rt.config.to_dict(),
        "post_exit": needs_post_exit(rec),
        "auto_remove": bool(rec.get("auto_remove")),
        "caller_cleans": str(paths.caller_cleans),
    }


def needs_post_exit(rec: dict) -> bool:
    """Whether the shim must run the post-exit hook: a network to release, or auto-remove."""
    mode = rec["spec"]["network"]["mode"]
    bridged = mode not in ("none", "host") and not mode.startswith("container:")
    return bridged or bool(rec.get("auto_remove"))
