"""train/metrics.py: the quality report's metrics on inputs whose answer is known."""
import math
import os
import sys

try:
    import numpy as np
except ImportError:
    print("SKIP: numpy is not installed")
    sys.exit(77)

SRC = os.environ.get("AVATAR_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "train"))
import metrics  # noqa: E402

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def close(a, b, tol):
    return a is not None and b is not None and abs(a - b) <= tol


def raises(fn, *args):
    try:
        fn(*args)
    except ValueError:
        return True
    return False


rng = np.random.default_rng(1)
img = rng.integers(0, 256, (40, 48, 3)).astype(np.uint8)

# --- PSNR and SSIM on identical images
check(metrics.psnr(img, img) == metrics.PSNR_CAP, "PSNR of identical images is the cap")
check(close(metrics.ssim(img, img), 1.0, 1e-12), "SSIM of identical images is 1")

# --- known noise: +-5 on every value gives MSE 25 exactly
flat = np.full((32, 32, 3), 100.0)
signs = np.where(rng.random(flat.shape) < 0.5, -5.0, 5.0)
want = 10 * math.log10(255.0 ** 2 / 25.0)
check(close(metrics.psnr(flat + signs, flat), want, 1e-9), "PSNR of +-5 noise = %.4f dB" % want)
noisy = np.clip(img + rng.normal(0, 20, img.shape), 0, 255)
mse = float(np.mean((noisy - img) ** 2))
check(close(metrics.psnr(noisy, img), 10 * math.log10(255.0 ** 2 / mse), 1e-9), "PSNR follows its formula")
check(metrics.psnr(noisy, img) < metrics.psnr(np.clip(img + rng.normal(0, 5, img.shape), 0, 255), img),
      "more noise, lower PSNR")

# --- SSIM: flat images have a closed form (no structure term)
c1 = (0.01 * 255) ** 2
ssim_flat = (2 * 100 * 110 + c1) / (100 ** 2 + 110 ** 2 + c1)
check(close(metrics.ssim(np.full((20, 20, 3), 110.0), np.full((20, 20, 3), 100.0)), ssim_flat, 1e-12),
      "SSIM of two flat images = luminance term %.6f" % ssim_flat)


def naive_ssim(a, b):
    """Direct windowed sums, one position at a time (independent of the separable filter)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    g = metrics._gaussian(11, 1.5)
    w2 = np.outer(g, g)
    c2 = (0.03 * 255) ** 2
    vals = []
    for ch in range(a.shape[2]):
        for y in range(a.shape[0] - 10):
            for x in range(a.shape[1] - 10):
                pa, pb = a[y:y + 11, x:x + 11, ch], b[y:y + 11, x:x + 11, ch]
                ma, mb = (w2 * pa).sum(), (w2 * pb).sum()
                va, vb = (w2 * pa * pa).sum() - ma * ma, (w2 * pb * pb).sum() - mb * mb
                cab = (w2 * pa * pb).sum() - ma * mb
                vals.append((2 * ma * mb + c1) * (2 * cab + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2)))
    return float(np.mean(vals))


small, small_n = img[:16, :18], noisy[:16, :18]
check(close(metrics.ssim(small_n, small), naive_ssim(small_n, small), 1e-10), "SSIM = a direct windowed SSIM")
check(close(metrics.ssim(small_n, small), metrics.ssim(small, small_n), 1e-12), "SSIM is symmetric")
s_lo = metrics.ssim(np.clip(img + rng.normal(0, 5, img.shape), 0, 255), img)
check(metrics.ssim(noisy, img) < s_lo < 1.0, "more noise, lower SSIM")
check(raises(metrics.ssim, img[:10, :10], img[:10, :10]), "SSIM refuses images under 11x11")
check(raises(metrics.psnr, img, img[:, :10]), "shape mismatch is an error")

# --- boxes: canvas 512x512 shown at 256x256
check(metrics.box_pixels([10.5, 20.2, 100.9, 50.0], 512, 512, 256, 256) == (5, 10, 51, 25),
      "box scaled to the image, outward-rounded")
check(metrics.box_pixels([-30, -5, 40, 700], 512, 512, 256, 256) == (0, 0, 20, 256), "box clipped to the image")
check(metrics.box_pixels([600, 10, 700, 20], 512, 512, 256, 256) is None, "box outside the image is None")
check(metrics.box_pixels(None, 512, 512, 256, 256) is None, "missing box is None")
check(metrics.box_pixels([50, 50, 40, 60], 512, 512, 256, 256) is None, "inverted box is None")
check(metrics.box_pixels([0, 0, 64, 32], 128, 64, 256, 256) == (0, 0, 128, 128), "non-square canvas scales per axis")
check(raises(metrics.box_pixels, [1, 2, 3], 64, 64, 64, 64), "a box of 3 numbers is an error")
m = metrics.region_mask([(0, 0, 4, 4), None, (2, 2, 6, 5)], 8, 8)
check(m is not None and int(m.sum()) == 16 + 12 - 4, "mask is the union of the boxes")
check(metrics.region_mask([None, None], 8, 8) is None, "no box, no mask")

# --- region PSNR sees only its pixels
gt = np.full((32, 32, 3), 120.0)
out = gt.copy()
out[20:, :] += 10.0                       # error outside the box
box = metrics.region_mask([(0, 0, 16, 16)], 32, 32)
check(metrics.region_psnr(out, gt, box) == metrics.PSNR_CAP, "error outside the box: region PSNR is the cap")
out2 = gt.copy()
out2[0:16, 0:16] += 10.0                  # error inside the box only
check(close(metrics.region_psnr(out2, gt, box), 10 * math.log10(255.0 ** 2 / 100.0), 1e-9),
      "error inside the box: region PSNR = PSNR of the box pixels")
check(metrics.region_psnr(out2, gt, box) < metrics.psnr(out2, gt), "region PSNR < whole-frame PSNR then")
check(metrics.region_psnr(out2, gt, None) is None, "no region: None")

# --- flicker
T = 10
gts = [np.clip(np.roll(img, 3 * t, axis=1).astype(np.float64) + t, 0, 255) for t in range(T)]
check(metrics.flicker(gts, gts) == 0.0, "flicker of the ground truth itself is 0")
offset = rng.normal(0, 30, img.shape)
check(close(metrics.flicker([g + offset for g in gts], gts), 0.0, 1e-9),
      "flicker 0 for a copy of the ground-truth motion over a fixed offset")
mad_gt = float(np.mean([np.mean(np.abs(gts[t] - gts[t - 1])) for t in range(1, T)]))
check(close(metrics.flicker([gts[0]] * T, gts), mad_gt, 1e-9), "a still output scores the ground truth's MAD")
jitter = [g + rng.normal(0, 3, g.shape) for g in gts]
check(metrics.flicker(jitter, gts) > 3.0, "noise in every frame shows as flicker")
check(raises(metrics.flicker, gts[:3], gts[:4]), "flicker of unequal lengths is an error")

# --- window schedule and seam frames
check(metrics.window_starts(48, 16, 4) == [0, 12, 24, 36], "48 frames, 16/4: windows at 0, 12, 24, 36")
check(metrics.window_starts(48, 16, 0) == [0, 16, 32], "48 frames, 16/0: windows at 0, 16, 32")
check(metrics.window_starts(50, 16, 0) == [0, 16, 32, 48], "50 frames, 16/0: a short last window at 48")
check(metrics.window_starts(10, 16, 4) == [0] and metrics.window_starts(0, 16, 4) == [], "one window, none")
check(metrics.seam_frames(48, 16, 0) == [16, 32], "seams without overlap: the window starts")
check(metrics.seam_frames(48, 16, 4) == list(range(12, 17)) + list(range(24, 29)) + list(range(36, 41)),
      "seams with overlap 4: kS..kS+4")
check(metrics.seam_frames(14, 16, 4) == [], "a single window has no seam")
check(raises(metrics.window_starts, 48, 16, 16), "overlap >= window is an error")

# --- seam error detects a synthetic jump: overlap 0, window 4, +-12 per window
n, W = 12, 4
gts = [np.clip(np.roll(img, 2 * t, axis=0).astype(np.float64), 0, 255) for t in range(n)]
jumpy = [g + (12.0 if (t // W) % 2 == 0 else -12.0) for t, g in enumerate(gts)]
acc = metrics.ClipAccumulator()
for o, g in zip(jumpy, gts):
    acc.add(o, g)
seams = metrics.seam_frames(n, W, 0)
at, other = metrics.seam_error(acc.d, seams)
check(seams == [4, 8] and close(at, 24.0, 1e-9) and close(other, 0.0, 1e-9),
      "jump of 24 at window starts: seam error 24, other frames 0 (got %s, %s)" % (at, other))
r = metrics.summarize([acc], W, 0)
check(close(r["seam_error"], 24.0, 1e-9) and r["seam_frames"] == 2 and close(r["nonseam_error"], 0.0, 1e-9),
      "summarize reports the same seam error")
smooth = metrics.ClipAccumulator()
for g in gts:
    smooth.add(g + 12.0, g)
r2 = metrics.summarize([smooth], W, 0)
check(close(r2["seam_error"], 0.0, 1e-9), "no jump, no seam error")

# --- paired seam excess: each layout's seam frames against a layout without a seam there.
# d rises with the frame index (a clip that moves faster and faster): the plain seam excess
# of a layout whose seams sit late is large although it adds nothing at its seams.
n_pe = 48
trend = [0.1 * t for t in range(1, n_pe)]
d_a = [x + (5.0 if t in (16, 32) else 0.0) for t, x in zip(range(1, n_pe), trend)]       # jumps at its seams
d_b = list(trend)                                                                      # seamless
pe = metrics.paired_seam_excess({"a": [d_a], "b": [d_b]}, {"a": (16, 0), "b": (16, 4)})
check(close(pe["a"], 5.0, 1e-9), "paired seam excess: a jump of 5 at the seams shows (%s)" % pe["a"])
check(close(pe["b"], 0.0, 1e-9), "paired seam excess: no jump, none (%s), though seams sit where d is high" % pe["b"])
at_b, other_b = metrics.seam_error(d_b, metrics.seam_frames(n_pe, 16, 4))
check(at_b - other_b > 0.2, "the plain seam excess of the seamless layout is not 0 on the trend (%.2f)" % (at_b - other_b))
pe = metrics.paired_seam_excess({"a": [d_a], "a2": [d_a]}, {"a": (16, 0), "a2": (16, 0)})
check(pe["a"] is None, "paired seam excess: no other layout without a seam there gives None")

# --- pooling over clips and round trip
acc2 = metrics.ClipAccumulator.from_dict(acc.to_dict())
check(acc2.to_dict() == acc.to_dict(), "accumulator round-trips through a dict")
both = metrics.summarize([acc, smooth], W, 0)
check(both["frames"] == 2 * n and close(both["flicker"], (sum(acc.d) + sum(smooth.d)) / (2 * (n - 1)), 1e-9),
      "summaries pool the frames of all clips")
check(both["face_psnr"] is None and both["face_frames"] == 0, "no region given: region PSNR n/a")

print("FAILED: %d" % len(failures) if failures else "PASS")
sys.exit(1 if failures else 0)
