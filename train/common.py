"""Shared training helpers: logging, checkpoints with resume, threads."""
import json
import os
import time

import torch


def setup_threads(n):
    torch.set_num_threads(n)
    os.environ.setdefault("OMP_NUM_THREADS", str(n))


class Logger:
    def __init__(self, run_dir):
        os.makedirs(run_dir, exist_ok=True)
        self.path = os.path.join(run_dir, "log.txt")

    def __call__(self, msg):
        line = "%s %s" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), msg)
        print(line, flush=True)
        with open(self.path, "a") as f:
            f.write(line + "\n")


def save_checkpoint(run_dir, state):
    """Atomic write of checkpoint.pt (a dict of state_dicts, step, wall time, args)."""
    tmp = os.path.join(run_dir, "checkpoint.pt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, os.path.join(run_dir, "checkpoint.pt"))


def load_checkpoint(run_dir):
    path = os.path.join(run_dir, "checkpoint.pt")
    if not os.path.exists(path):
        return None
    return torch.load(path, map_location="cpu")


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
