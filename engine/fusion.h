/* Temporal fusion of overlapping latent windows, streaming form (DESIGN.md
 * section 3, docs/temporal-fusion.md). Pure logic, no model code: the
 * window schedule, the fusion weights of Make-Your-Anchor (uniform) and
 * MimicMotion (progressive, a triangle over window positions), the
 * in-loop fusion of a lookahead group, the per-step carry from one group to
 * the next, and the final blend latentfuse does.
 *
 * W = window, O = overlap (0 <= O < W), S = W - O. Window k holds frames
 * [kS, min (kS + W, N)): for a stream of N frames (known at EOS) the last
 * window is shortened to end at frame N, and a window is formed only if it
 * holds a frame no earlier window holds. So every frame leaves exactly once.
 *
 * Per-window tensors are frame-major: frame f of a window (its position in
 * the window) is frame_size floats at base + f * frame_size, as in the UNet,
 * where the frames of a window are the batch. */
#ifndef AE_FUSION_H
#define AE_FUSION_H

#include <stddef.h>
#include <stdint.h>

#include "ae-error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* N not known yet (the stream goes on). */
#define AE_FUSION_N_UNKNOWN ((int64_t) -1)

typedef enum {
  AE_FUSION_PROGRESSIVE = 0,    /* MimicMotion's triangle weights */
  AE_FUSION_UNIFORM = 1         /* Make-Your-Anchor's average */
} AeFusionMode;

typedef struct {
  int window;                   /* W, frames per window */
  int overlap;                  /* O, frames shared by consecutive windows */
  int stride;                   /* S = W - O */
  AeFusionMode mode;
} AeFusionLayout;

/* Checks 1 <= window, 0 <= overlap < window and the mode. */
int ae_fusion_layout_init (AeFusionLayout * l, int window, int overlap,
    AeFusionMode mode, AeError * err);

/* ---- Window schedule (n_frames = N, or AE_FUSION_N_UNKNOWN) ---- */

/* Windows formed for N frames: 0 for N = 0, 1 for N <= W, else
 * 1 + ceil ((N - W) / S). */
int64_t ae_fusion_n_windows (const AeFusionLayout * l, int64_t n_frames);

/* First frame of window k: kS. */
int64_t ae_fusion_window_first (const AeFusionLayout * l, int64_t k);

/* Frames in window k: W, or fewer for the last window at EOS; 0 if window
 * k is not formed for N frames. */
int ae_fusion_window_length (const AeFusionLayout * l, int64_t k,
    int64_t n_frames);

/* Last frame of window k (first + length - 1), -1 if not formed. */
int64_t ae_fusion_window_last (const AeFusionLayout * l, int64_t k,
    int64_t n_frames);

/* Windows holding frame n: k_first..k_last (inclusive). Returns the count;
 * 0 (and -1, -1) when n is not a frame of the stream. */
int ae_fusion_covering (const AeFusionLayout * l, int64_t n,
    int64_t n_frames, int64_t * k_first, int64_t * k_last);

/* The window whose arrival lets frame n leave (its last covering window
 * while the stream goes on: floor (n / S)). At EOS every held frame
 * leaves; see ae_fusion_frames_ready. */
int64_t ae_fusion_emit_window (const AeFusionLayout * l, int64_t n);

/* Frames [0, ready) may have left once windows 0..k arrived: (k + 1) S
 * while the stream goes on; at EOS (n_frames known and k the last window)
 * all N. */
int64_t ae_fusion_frames_ready (const AeFusionLayout * l, int64_t k,
    int64_t n_frames);

/* Latency in frames of avatardiffuse + latentfuse with lookahead L >= 1:
 * the most frames that arrive after frame n before n can leave,
 * L S + O - 1 (W - 1 for L = 1). -1 for L <= 0 (all: unbounded). */
int64_t ae_fusion_latency_frames (const AeFusionLayout * l, int lookahead);

/* ---- Weights ---- */

/* Unnormalised weight of position j in a window: 1 (uniform), or
 * min ((j + 0.5) 2 / W, 2 - (j + 0.5) 2 / W) (progressive). A shortened last
 * window keeps the weights of its positions in a full window. */
float ae_fusion_position_weight (const AeFusionLayout * l, int j);

/* Weight of window k for frame n among the windows k_first..k_last that
 * hold n (a sub-range of its covering windows: the ones that take part),
 * normalised to sum to 1 over that range; 0 if k is outside it or does
 * not hold n. */
float ae_fusion_weight_in (const AeFusionLayout * l, int64_t n,
    int64_t k, int64_t k_first, int64_t k_last);

/* Weight of window k for frame n over all its covering windows. */
float ae_fusion_weight (const AeFusionLayout * l, int64_t n, int64_t k,
    int64_t n_frames);

/* ---- Fusion ---- */

/* In-loop fusion of one lookahead group: windows first_window ..
 * first_window + n_windows - 1, windows[i] the frame-major tensor of window
 * first_window + i (ae_fusion_window_length frames of frame_size floats).
 * Every frame held by two or more of them gets, in every copy, the blend
 * of its copies weighted over the group's windows. Call it per denoising
 * step on the noise predictions, once for the conditional and once for the
 * unconditional pass (before CFG), as both papers do. */
int ae_fusion_fuse_group (const AeFusionLayout * l, int64_t first_window,
    int n_windows, int64_t n_frames, float *const *windows,
    size_t frame_size, AeError * err);

/* Final blend of frame n (latentfuse): copies[i] is frame n's tensor
 * (frame_size floats) in window k_first + i, for its covering windows
 * k_first..k_last (ae_fusion_covering); out = the weighted sum. */
int ae_fusion_blend_frame (const AeFusionLayout * l, int64_t n,
    int64_t n_frames, const float *const *copies, int n_copies,
    float *out, size_t frame_size, AeError * err);

/* ---- Carry between lookahead groups ---- */

/* The last O frames' latents of a group's last window after every step,
 * kept for the next group's first window. Allocated once. */
typedef struct AeFusionCarry AeFusionCarry;

AeFusionCarry *ae_fusion_carry_new (const AeFusionLayout * l, int steps,
    size_t frame_size, AeError * err);
void ae_fusion_carry_free (AeFusionCarry * c);

/* Forgets what was kept (new stream: the next group starts fresh). */
void ae_fusion_carry_reset (AeFusionCarry * c);

/* After step `step` of the group whose last window is `window` (its
 * frame-major latents, window_length frames): keeps its last O frames.
 * window_length must be W: a shortened window is the last one, with no
 * window after it to carry to. */
int ae_fusion_carry_keep (AeFusionCarry * c, int step, int64_t window,
    const float *latents, int window_length, AeError * err);

/* After step `step` of the group first_window .. first_window + n_windows
 * - 1: frames [first_window S, first_window S + O), in every window of the
 * group that holds them, become A kept + (1 - A) own, where A is the
 * summed weight of their windows before the group, normalised over their
 * windows up to the group's last. Nothing to do for window 0; an error if
 * step `step` of window first_window - 1 was not kept. */
int ae_fusion_carry_blend (AeFusionCarry * c, int step, int64_t first_window,
    int n_windows, int64_t n_frames, float *const *windows, AeError * err);

#ifdef __cplusplus
}
#endif
#endif /* AE_FUSION_H */
