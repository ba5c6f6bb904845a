"""The Python API: `Client` is what the CLI, the dashboard and other programs call.

    from tmuxtrain.api import Client
    c = Client()                                   # reads TMUXTRAIN_* like the CLI
    [job_id] = c.add_command("python train.py --lr 3e-4", gpus=1, vram="10GiB")
    c.wait([job_id])                               # True when every job succeeded
    print(c.show(job_id)["metrics"].get("loss"))

Heavy modules (tmux, psutil, NVML, YAML) are imported only by the methods that need them,
so `tmuxtrain ls` starts fast.
"""

from __future__ import annotations

from tmuxtrain.api.changing import Changing
from tmuxtrain.api.reading import Reading
from tmuxtrain.api.submitting import ADHOC, Submitting, adhoc_name
from tmuxtrain.store import job_json


class Client(Submitting, Reading, Changing):
    """One user's view of one tmuxtrain home: what the CLI, the dashboard and other
    programs call. Its parts live in tmuxtrain/api/ by what they do."""


__all__ = ["ADHOC", "Client", "adhoc_name", "job_json"]
