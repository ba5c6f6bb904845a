"""`tmuxtrain demo`: start the scheduler, queue the example jobs, open the dashboard.

The examples are copied to `$TMUXTRAIN_HOME/demo` first (the installed package may be
read-only, and the jobs write checkpoints next to themselves). Without an NVIDIA GPU the
demo simulates four, and says so.
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib import resources

from tmuxtrain.api import Client
from tmuxtrain.settings import from_env

EXAMPLES = ("single.yaml", "sweep.yaml", "chain.yaml")
SIMULATED = "fake:4x24GiB"


def copy_examples(dest: str) -> str:
    os.makedirs(dest, exist_ok=True)
    src = resources.files("tmuxtrain") / "examples"
    for item in src.iterdir():
        if item.name.endswith((".py", ".yaml")):
            with resources.as_file(item) as path:
                shutil.copyfile(path, os.path.join(dest, item.name))
    return dest


def run_demo(client: Client, open_ui: bool = True) -> int:
    if not client.settings.gpus and client.list_gpu_count() == 0:
        print(
            "No NVIDIA GPU found: the demo simulates 4 x 24 GiB GPUs "
            f"(TMUXTRAIN_GPUS={SIMULATED}); tmuxtrain gpus and ui show them while its "
            "scheduler runs."
        )
        os.environ["TMUXTRAIN_GPUS"] = SIMULATED
        if client.scheduler_running():  # it runs without GPUs: restart it on the fakes
            client.down()
        client.close()
        client = Client(from_env())
    dest = copy_examples(os.path.join(client.settings.home, "demo"))
    paths = [os.path.join(dest, name) for name in EXAMPLES]
    ids = client.add_files(paths)
    print(f"queued jobs {', '.join(map(str, ids))} from {dest}")
    if not open_ui:
        print("watch them with: tmuxtrain ui   (or tmuxtrain ls)")
        return 0
    if not sys.stdout.isatty():
        print("not a terminal: skipping the dashboard (run tmuxtrain ui)")
        return 0
    from tmuxtrain.ui.app import run_ui

    return run_ui(client)
