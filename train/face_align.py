"""Face alignment for facerecapture in numpy, the reference for engine/face-align.c.

Conventions (docs/face-model.md): pixel (u, v) of an image or crop has its centre at
(u + 0.5, v + 0.5).  The crop transform maps image coordinates p to crop coordinates
q = M p + t with M = [[a, -b], [b, a]] (a similarity: scale and rotation, no reflection).
It is the confidence-weighted least-squares fit of five face points (eye centres, nose
tip, mouth corners) of the 68/70-point OpenPose face to ALIGN["template"] * crop size.
"""
import numpy as np

# OpenPose / iBUG 68 face layout (+ 68, 69 pupils)
LEFT_EYE = list(range(36, 42))      # image-left eye
RIGHT_EYE = list(range(42, 48))
NOSE_TIP = 30
MOUTH_LEFT, MOUTH_RIGHT = 48, 54
JAW = list(range(0, 17))
BROWS = list(range(17, 27))
HEAT_GROUPS = (list(range(0, 27)), list(range(27, 48)) + [68, 69], list(range(48, 68)))


def face_array(flat):
    """OpenPose face_keypoints_2d (flat [x, y, c, ...]) -> (N, 3) float32; None if < 68 points."""
    if flat is None or len(flat) < 68 * 3:
        return None
    return np.asarray(flat, dtype=np.float32).reshape(-1, 3)


def face_confident(face, min_conf):
    """All 68 points present (c > 0) and mean confidence >= min_conf."""
    if face is None or face.shape[0] < 68:
        return False
    c = face[:68, 2]
    if not np.all(c > 0) or not np.all(np.isfinite(face[:68])):
        return False
    return float(c.astype(np.float64).mean()) >= min_conf


def five_points(face):
    """(5, 2) points and (5,) weights: eye centres (mean of 6 points, weight = min c),
    nose tip, mouth corners."""
    pts = np.zeros((5, 2), np.float64)
    w = np.zeros(5, np.float64)
    for i, idx in enumerate((LEFT_EYE, RIGHT_EYE)):
        pts[i] = face[idx, :2].astype(np.float64).mean(axis=0)
        w[i] = face[idx, 2].min()
    for i, k in enumerate((NOSE_TIP, MOUTH_LEFT, MOUTH_RIGHT)):
        pts[2 + i] = face[k, :2]
        w[2 + i] = face[k, 2]
    return pts, w


def fit_transform(face, template, size):
    """(a, b, tx, ty) of q = M p + t, fit to template * size (weighted least squares)."""
    p, w = five_points(face)
    q = np.asarray(template, np.float64) * size
    sw = w.sum()
    mp = (w[:, None] * p).sum(0) / sw
    mq = (w[:, None] * q).sum(0) / sw
    pc, qc = p - mp, q - mq
    n = (w * (pc ** 2).sum(1)).sum()
    a = (w * (pc[:, 0] * qc[:, 0] + pc[:, 1] * qc[:, 1])).sum() / n
    b = (w * (pc[:, 0] * qc[:, 1] - pc[:, 1] * qc[:, 0])).sum() / n
    tx = mq[0] - (a * mp[0] - b * mp[1])
    ty = mq[1] - (b * mp[0] + a * mp[1])
    return np.array([a, b, tx, ty], np.float64)


def rescale(tr, s):
    """The same crop window at another crop size (s = new size / old size)."""
    return np.asarray(tr, np.float64) * s


def apply(tr, pts):
    a, b, tx, ty = tr
    x, y = pts[..., 0], pts[..., 1]
    return np.stack([a * x - b * y + tx, b * x + a * y + ty], axis=-1)


def invert_points(tr, q):
    a, b, tx, ty = tr
    d = a * a + b * b
    x, y = q[..., 0] - tx, q[..., 1] - ty
    return np.stack([(a * x + b * y) / d, (-b * x + a * y) / d], axis=-1)


def bilinear(img, x, y):
    """img (H, W, C) float32, sample positions x, y in pixel-index units (centre = integer);
    clamp to the edge."""
    h, w = img.shape[:2]
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = (x - x0)[..., None].astype(np.float32)
    fy = (y - y0)[..., None].astype(np.float32)
    x0 = x0.astype(np.int64)
    y0 = y0.astype(np.int64)
    xa, xb = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    ya, yb = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    top = img[ya, xa] * (1 - fx) + img[ya, xb] * fx
    bot = img[yb, xa] * (1 - fx) + img[yb, xb] * fx
    return top * (1 - fy) + bot * fy


def warp_crop(img, tr, size):
    """img (H, W, 3) uint8/float -> crop (size, size, 3) float32 in 0..255."""
    u = np.arange(size, dtype=np.float64) + 0.5
    q = np.stack(np.meshgrid(u, u), axis=-1)           # (v, u, [x, y])
    p = invert_points(tr, q) - 0.5
    return bilinear(img.astype(np.float32), p[..., 0], p[..., 1]).astype(np.float32)


def heatmap(face, tr, size, sigma, min_conf):
    """(3, size, size) float32: per group, max over its points (c >= min_conf) of
    exp(-d^2 / (2 sigma^2)) at pixel centres, 0 where d^2 > 9 sigma^2; sigma in crop px."""
    out = np.zeros((3, size, size), np.float32)
    q = apply(tr, face[:, :2].astype(np.float64))
    u = np.arange(size, dtype=np.float64) + 0.5
    for g, idx in enumerate(HEAT_GROUPS):
        for k in idx:
            if k >= face.shape[0] or not face[k, 2] >= min_conf:
                continue
            dx = u[None, :] - q[k, 0]
            dy = u[:, None] - q[k, 1]
            d2 = dx * dx + dy * dy
            v = np.where(d2 <= 9 * sigma * sigma, np.exp(-d2 / (2 * sigma * sigma)), 0.0)
            out[g] = np.maximum(out[g], v.astype(np.float32))
    return out


def mask_polygon(face, tr, size, brow_lift):
    """Crop-space polygon: jaw 0..16 then brows 26..17 lifted by brow_lift * size."""
    q = apply(tr, face[:, :2].astype(np.float64))
    poly = [q[k] for k in JAW] + [q[k] - np.array([0.0, brow_lift * size]) for k in BROWS[::-1]]
    return np.asarray(poly)


def hard_mask(face, tr, size, brow_lift):
    """(size, size) float32 1 inside the polygon (even-odd rule at pixel centres)."""
    poly = mask_polygon(face, tr, size, brow_lift)
    u = np.arange(size, dtype=np.float64) + 0.5
    px, py = np.meshgrid(u, u)
    inside = np.zeros((size, size), bool)
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        cond = (y1 > py) != (y2 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
        inside ^= cond & (px < xc)
    return inside.astype(np.float32)


def box_blur(m, r):
    """Separable box blur of radius r, zero outside, divided by 2r + 1 (one pass)."""
    if r <= 0:
        return m.copy()
    k = 2 * r + 1
    pad = np.pad(m, r)
    cs = np.cumsum(pad, axis=1, dtype=np.float64)
    cs = np.pad(cs, ((0, 0), (1, 0)))
    h = (cs[:, k:] - cs[:, :-k])[r:-r] / k
    pad = np.pad(h, ((r, r), (0, 0)))
    cs = np.cumsum(pad, axis=0, dtype=np.float64)
    cs = np.pad(cs, ((1, 0), (0, 0)))
    return ((cs[k:] - cs[:-k]) / k).astype(np.float32)


def soft_mask(hard, size, feather):
    r = int(round(feather * size))
    return box_blur(box_blur(hard, r), r)


def prepare(img, face, tr, size, align):
    """crop (3, S, S) in [-1, 1], masked crop, hard mask (1, S, S), soft mask, heatmap."""
    crop = warp_crop(img, tr, size).transpose(2, 0, 1) / 127.5 - 1.0
    hard = hard_mask(face, tr, size, align["brow_lift"])
    soft = soft_mask(hard, size, align["feather"])
    heat = heatmap(face, tr, size, align["heatmap_sigma"] * size, align["min_confidence"])
    return (crop.astype(np.float32), (crop * (1 - hard)).astype(np.float32), hard[None],
            soft[None], heat)


def blend(img, gen, soft, tr, strength):
    """Blends the generated crop (S, S, 3) in 0..255 back into img (H, W, 3) uint8 with
    alpha = strength * soft mask sampled at each frame pixel (0 outside the crop)."""
    size = gen.shape[0]
    h, w = img.shape[:2]
    u = np.arange(w, dtype=np.float64) + 0.5
    v = np.arange(h, dtype=np.float64) + 0.5
    p = np.stack(np.meshgrid(u, v), axis=-1)
    q = apply(tr, p) - 0.5
    inside = (q[..., 0] > -1) & (q[..., 0] < size) & (q[..., 1] > -1) & (q[..., 1] < size)
    padded = np.pad(soft.astype(np.float32), 1)[..., None]
    alpha = bilinear(padded, q[..., 0] + 1, q[..., 1] + 1)[..., 0] * strength
    alpha = np.where(inside, alpha, 0.0).astype(np.float32)
    g = bilinear(gen.astype(np.float32), q[..., 0], q[..., 1])
    out = img.astype(np.float32) * (1 - alpha[..., None]) + g * alpha[..., None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
