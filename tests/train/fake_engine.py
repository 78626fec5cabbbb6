#!/usr/bin/python3
"""Stand-in for `avatar-engine run unet|vae-encode|vae-decode` built on train/models.py, so
the tests can exercise bench/unet_vs_torch.py's and train/check_engine.py's engine halves
(argument passing, safetensors exchange, `time_per_call_s:` parsing, comparison) before the
C engine exists.  With --perturb X it adds X to every output (the tests expect a FAIL then)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "train"))
import torch  # noqa: E402
import export  # noqa: E402
import models  # noqa: E402
import safetensors_io as st  # noqa: E402


def main(argv):
    if len(argv) < 2 or argv[0] != "run":
        print("usage: fake_engine.py run COMPONENT --model DIR --in IN --out OUT [--repeat N] [--warmup N]", file=sys.stderr)
        return 2
    comp = argv[1]
    opts = dict(zip(argv[2::2], argv[3::2]))
    perturb = float(os.environ.get("FAKE_ENGINE_PERTURB", "0"))
    inp = st.load(opts["--in"], to_float32=True)
    cls = models.UNet2DConditionModel if comp == "unet" else models.AutoencoderKL
    m = export.load_folder(cls, opts["--model"])
    times = []
    with torch.no_grad():
        warmup = int(opts.get("--warmup", "0"))
        for i in range(warmup + int(opts.get("--repeat", "1"))):
            t0 = time.perf_counter()
            if comp == "unet":
                out = {"sample": m(inp["sample"], inp["timestep"].long(), inp["encoder_hidden_states"])}
            elif comp == "vae-encode":
                mean, logvar = m.encode(inp["sample"])
                out = {"mean": mean, "logvar": logvar}
            else:
                out = {"sample": m.decode(inp["latent"])}
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    st.save({k: v + perturb for k, v in out.items()}, opts["--out"])
    if "--repeat" in opts:
        print("warmup_calls: %d" % warmup)
        print("time_per_call_s: %.6f" % sorted(times)[len(times) // 2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
