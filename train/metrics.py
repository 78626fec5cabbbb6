"""Image and video quality metrics of the quality report (docs/quality.md).  numpy only.

Images are (H, W, 3) arrays (uint8 or float) on the 0..255 scale.  Definitions:

- PSNR: 10 log10(255^2 / MSE) over all pixels and channels, capped at PSNR_CAP dB (identical
  images give the cap, not infinity, so that means over frames stay finite).
- SSIM: Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
  L = 255, computed per RGB channel over the 'valid' positions (window fully inside the image)
  and averaged over positions and channels.
- Region PSNR: the PSNR over the pixels inside one or more boxes (their union).  Boxes are
  [x0, y0, x1, y1] in canvas pixels (boxes.jsonl); box_pixels() scales them to the image and
  takes every pixel whose area overlaps the box.
- Frame-difference error of frame t >= 1:
  d_t = mean |(out_t - out_{t-1}) - (gt_t - gt_{t-1})| over pixels and channels (0..255).
  Temporal flicker = the mean of d_t over t.  A video that changes exactly as the ground truth
  does (including one that differs from it by a constant image) has flicker 0; copying one
  image to every frame has flicker mean |gt_t - gt_{t-1}|, the ground truth's own motion.
- Seam frames (window W, overlap O, S = W - O, N frames, the schedule of
  docs/temporal-fusion.md): for every window start kS (k >= 1) the frames b = kS .. kS + O
  (below N): from the first frame the new window covers to the first frame after the previous
  window stopped, so d_b spans every change of the fusion weights there (b = kS alone for
  O = 0).  Seam error = mean of d_b over seam frames; the same mean over the other frames is
  the baseline it is compared with.
- Paired seam excess of a layout V among several renders of the same clips: the mean over
  clips and over V's seam frames b that some other render U has no seam at of
  d_b(V) - mean over those U of d_b(U).  Each seam frame is compared with the same frame of
  the same clip rendered without a seam there, so how fast the clip moves at its seams
  (which the plain seam excess picks up) cancels out.
"""
import math

import numpy as np

PSNR_CAP = 100.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
DATA_RANGE = 255.0


def _as_float(img, what="image"):
    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError("%s: expected an (H, W, C) array, got shape %s" % (what, a.shape))
    return a


def _check_pair(a, b):
    a = _as_float(a, "output")
    b = _as_float(b, "ground truth")
    if a.shape != b.shape:
        raise ValueError("output %s and ground truth %s differ in shape" % (a.shape, b.shape))
    return a, b


def psnr_from_mse(mse):
    if mse <= 0.0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(DATA_RANGE * DATA_RANGE / mse))


def psnr(out, gt):
    a, b = _check_pair(out, gt)
    return psnr_from_mse(float(np.mean((a - b) ** 2)))


def _gaussian(n, sigma):
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


_GAUSS = _gaussian(SSIM_WINDOW, SSIM_SIGMA)


def _filter_valid(x):
    """Separable Gaussian filter of an (H, W, C) array, 'valid' positions only."""
    n = SSIM_WINDOW
    h, w = x.shape[0] - n + 1, x.shape[1] - n + 1
    rows = np.zeros((h, x.shape[1], x.shape[2]))
    for k in range(n):
        rows += _GAUSS[k] * x[k:k + h]
    out = np.zeros((h, w, x.shape[2]))
    for k in range(n):
        out += _GAUSS[k] * rows[:, k:k + w]
    return out


def ssim(out, gt):
    a, b = _check_pair(out, gt)
    if a.shape[0] < SSIM_WINDOW or a.shape[1] < SSIM_WINDOW:
        raise ValueError("SSIM needs images of at least %dx%d pixels, got %dx%d"
                         % (SSIM_WINDOW, SSIM_WINDOW, a.shape[1], a.shape[0]))
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    mu_a = _filter_valid(a)
    mu_b = _filter_valid(b)
    s_aa = _filter_valid(a * a) - mu_a * mu_a
    s_bb = _filter_valid(b * b) - mu_b * mu_b
    s_ab = _filter_valid(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * s_ab + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (s_aa + s_bb + c2)
    return float(np.mean(num / den))


def box_pixels(box, canvas_w, canvas_h, img_w, img_h):
    """Canvas box [x0, y0, x1, y1] -> integer pixel box (x0, y0, x1, y1), end exclusive, in an
    img_w x img_h image showing the whole canvas; None for a missing or empty box."""
    if box is None:
        return None
    if len(box) != 4 or canvas_w <= 0 or canvas_h <= 0:
        raise ValueError("bad box %r on a %sx%s canvas" % (box, canvas_w, canvas_h))
    sx, sy = img_w / float(canvas_w), img_h / float(canvas_h)
    x0 = max(0, int(math.floor(box[0] * sx)))
    y0 = max(0, int(math.floor(box[1] * sy)))
    x1 = min(img_w, int(math.ceil(box[2] * sx)))
    y1 = min(img_h, int(math.ceil(box[3] * sy)))
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1, y1)


def region_mask(pixel_boxes, img_w, img_h):
    """Union of pixel boxes -> boolean (H, W) mask, or None when no box is present."""
    mask = None
    for b in pixel_boxes:
        if b is None:
            continue
        if mask is None:
            mask = np.zeros((img_h, img_w), dtype=bool)
        mask[b[1]:b[3], b[0]:b[2]] = True
    return mask


def region_mse(out, gt, mask):
    a, b = _check_pair(out, gt)
    if mask is None or not mask.any():
        return None
    return float(np.mean((a[mask] - b[mask]) ** 2))


def region_psnr(out, gt, mask):
    """PSNR over the pixels of mask; None when the mask is empty (region not in the frame)."""
    mse = region_mse(out, gt, mask)
    return None if mse is None else psnr_from_mse(mse)


def frame_diff_error(out_prev, out_cur, gt_prev, gt_cur):
    """d_t = mean |(out_t - out_{t-1}) - (gt_t - gt_{t-1})|."""
    op, oc = _check_pair(out_prev, out_cur)
    gp, gc = _check_pair(gt_prev, gt_cur)
    if op.shape != gp.shape:
        raise ValueError("output %s and ground truth %s differ in shape" % (op.shape, gp.shape))
    return float(np.mean(np.abs((oc - op) - (gc - gp))))


def mean_abs_diff(prev, cur):
    a, b = _check_pair(prev, cur)
    return float(np.mean(np.abs(b - a)))


def flicker(outs, gts):
    """Temporal flicker of two equally long frame sequences: mean of d_t over t = 1..N-1."""
    if len(outs) != len(gts):
        raise ValueError("%d output frames vs %d ground-truth frames" % (len(outs), len(gts)))
    d = [frame_diff_error(outs[t - 1], outs[t], gts[t - 1], gts[t]) for t in range(1, len(outs))]
    return float(np.mean(d)) if d else 0.0


def window_starts(n, window, overlap):
    """Start frames of the windows of an n-frame clip (docs/temporal-fusion.md): window k
    holds [kS, min(kS + W, n)), K(n) = 0, 1 or 1 + ceil((n - W) / S) windows."""
    if window < 1 or overlap < 0 or overlap >= window:
        raise ValueError("need window >= 1 and 0 <= overlap < window (got %d, %d)" % (window, overlap))
    if n <= 0:
        return []
    s = window - overlap
    k = 1 if n <= window else 1 + (n - window + s - 1) // s
    return [i * s for i in range(k)]


def seam_frames(n, window, overlap):
    """Frames b in [1, n) of the window transitions: kS .. kS + O for every window start
    kS >= 1 (see module doc)."""
    seams = set()
    for s in window_starts(n, window, overlap)[1:]:
        seams.update(b for b in range(s, s + overlap + 1) if b < n)
    return sorted(seams)


def seam_error(d, seams):
    """d[t - 1] = d_t for t = 1..N-1; returns (mean of d at seam frames, mean elsewhere);
    a mean over no frame is None."""
    at = [d[b - 1] for b in seams if 1 <= b <= len(d)]
    sset = set(seams)
    other = [d[t - 1] for t in range(1, len(d) + 1) if t not in sset]
    return (float(np.mean(at)) if at else None, float(np.mean(other)) if other else None)


class ClipAccumulator:
    """Feeds one clip frame by frame (output, ground truth, face mask, hand mask) and keeps
    the sums: no frame is held except the previous pair."""

    def __init__(self):
        self.n = 0
        self.ssim = []
        self.psnr = []
        self.face_psnr = []
        self.hand_psnr = []
        self.d = []          # d_t, t = 1..n-1
        self.mad_out = []    # mean |out_t - out_{t-1}|
        self.mad_gt = []
        self._prev = None

    def add(self, out, gt, face_mask=None, hand_mask=None):
        out, gt = _check_pair(out, gt)
        self.ssim.append(ssim(out, gt))
        self.psnr.append(psnr(out, gt))
        f = region_psnr(out, gt, face_mask)
        if f is not None:
            self.face_psnr.append(f)
        h = region_psnr(out, gt, hand_mask)
        if h is not None:
            self.hand_psnr.append(h)
        if self._prev is not None:
            po, pg = self._prev
            self.d.append(frame_diff_error(po, out, pg, gt))
            self.mad_out.append(mean_abs_diff(po, out))
            self.mad_gt.append(mean_abs_diff(pg, gt))
        self._prev = (out, gt)
        self.n += 1

    FIELDS = ("ssim", "psnr", "face_psnr", "hand_psnr", "d", "mad_out", "mad_gt")

    def to_dict(self):
        r = {k: list(getattr(self, k)) for k in self.FIELDS}
        r["n"] = self.n
        return r

    @classmethod
    def from_dict(cls, r):
        a = cls()
        for k in cls.FIELDS:
            setattr(a, k, [float(v) for v in r[k]])
        a.n = int(r["n"])
        return a


def mean_or_none(values):
    return float(np.mean(values)) if len(values) else None


def summarize(accs, window=None, overlap=None):
    """Pooled means over the frames of several clips.  With window/overlap the seam error
    (mean d_b at seam frames vs at the other frames, pooled over clips) is added."""
    pool = {k: [] for k in ("ssim", "psnr", "face_psnr", "hand_psnr", "d", "mad_out", "mad_gt")}
    seam_at, seam_other = [], []
    for a in accs:
        for k in pool:
            pool[k].extend(getattr(a, k))
        if window is not None:
            s = set(seam_frames(a.n, window, overlap))
            seam_at.extend(a.d[b - 1] for b in sorted(s) if 1 <= b <= len(a.d))
            seam_other.extend(a.d[t - 1] for t in range(1, len(a.d) + 1) if t not in s)
    r = {
        "frames": sum(a.n for a in accs),
        "ssim": mean_or_none(pool["ssim"]),
        "psnr": mean_or_none(pool["psnr"]),
        "face_psnr": mean_or_none(pool["face_psnr"]),
        "face_frames": len(pool["face_psnr"]),
        "hand_psnr": mean_or_none(pool["hand_psnr"]),
        "hand_frames": len(pool["hand_psnr"]),
        "flicker": mean_or_none(pool["d"]),
        "mad_out": mean_or_none(pool["mad_out"]),
        "mad_gt": mean_or_none(pool["mad_gt"]),
    }
    if window is not None:
        r["seam_error"] = mean_or_none(seam_at)
        r["seam_frames"] = len(seam_at)
        r["nonseam_error"] = mean_or_none(seam_other)
    return r


def paired_seam_excess(d_by_variant, layouts):
    """d_by_variant: {variant: [d list of each clip]} (the same clips in the same order);
    layouts: {variant: (window, overlap)}.  Returns {variant: paired seam excess or None}
    (module doc)."""
    seams = {v: [set(seam_frames(len(d) + 1, *layouts[v])) for d in ds] for v, ds in d_by_variant.items()}
    out = {}
    for v, ds in d_by_variant.items():
        diffs = []
        for c, d in enumerate(ds):
            for b in sorted(seams[v][c]):
                base = [d_by_variant[u][c][b - 1] for u in d_by_variant
                        if u != v and b not in seams[u][c] and 1 <= b <= len(d_by_variant[u][c])]
                if base and 1 <= b <= len(d):
                    diffs.append(d[b - 1] - float(np.mean(base)))
        out[v] = mean_or_none(diffs)
    return out
