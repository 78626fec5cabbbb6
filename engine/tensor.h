/* Float32 tensors and the activation arena of the avatar engine.
 *
 * An AeTensor is a view: a data pointer plus a row-major shape (NCHW for
 * images, (B, L, C) "NLC" for token sequences). It never owns its data.
 * Activations come from an AeArena: a bump allocator with stack-like marks.
 * The first forward pass at a given model + input shape may grow the arena
 * (overflow blocks are malloc'd and counted); ae_arena_reset() then folds
 * everything into one block of the measured peak, so every later pass at
 * that shape allocates nothing. */
#ifndef AE_TENSOR_H
#define AE_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ae-error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AE_MAX_DIMS 6

typedef struct {
  float *data;                  /* not owned */
  int ndim;
  int64_t shape[AE_MAX_DIMS];   /* row-major, shape[ndim-1] is contiguous */
} AeTensor;

/* Number of elements (1 for ndim == 0). */
int64_t ae_tensor_numel (const AeTensor * t);

/* Builds a view over data; unused dims are set to 1. */
AeTensor ae_tensor_1d (float *data, int64_t n0);
AeTensor ae_tensor_2d (float *data, int64_t n0, int64_t n1);
AeTensor ae_tensor_3d (float *data, int64_t n0, int64_t n1, int64_t n2);
AeTensor ae_tensor_4d (float *data, int64_t n0, int64_t n1, int64_t n2,
    int64_t n3);
AeTensor ae_tensor_nd (float *data, int ndim, const int64_t * shape);

/* Same tensor data seen with another shape of equal numel; returns -1 and
 * fills err when numel differs. */
int ae_tensor_reshape (AeTensor * t, int ndim, const int64_t * shape,
    AeError * err);

bool ae_tensor_same_shape (const AeTensor * a, const AeTensor * b);

/* Writes "(2,4,64,64)" into buf; returns buf. */
char *ae_shape_str (int ndim, const int64_t * shape, char *buf, size_t size);

/* Checks t has exactly this shape; -1 in expect matches any size. The error
 * names `what` and says expected and found. */
int ae_tensor_check_shape (const AeTensor * t, const char *what, int ndim,
    const int64_t * expect, AeError * err);

/* ---- arena ---------------------------------------------------------- */

#define AE_ARENA_ALIGN 64

typedef struct AeArenaBlock AeArenaBlock;

typedef struct {
  uint8_t *base;                /* main block */
  size_t capacity;              /* bytes in main block */
  size_t used;                  /* bytes in use: main block + overflow */
  size_t peak;                  /* highest `used` since the last reset */
  AeArenaBlock *overflow;       /* blocks malloc'd when main was too small */
  unsigned grow_count;          /* overflow blocks created, ever */
} AeArena;

/* Empty arena; capacity may be 0 (first pass then measures). */
int ae_arena_init (AeArena * a, size_t capacity, AeError * err);
void ae_arena_clear (AeArena * a);

/* Makes the main block at least `bytes` large (frees all allocations). */
int ae_arena_reserve (AeArena * a, size_t bytes, AeError * err);

/* 64-byte aligned, uninitialised. NULL (with err) only when out of memory. */
void *ae_arena_alloc (AeArena * a, size_t bytes, AeError * err);

/* Allocates a tensor of the given shape from the arena; t->data is NULL
 * and -1 returned when out of memory. */
int ae_arena_tensor (AeArena * a, AeTensor * t, int ndim,
    const int64_t * shape, AeError * err);
int ae_arena_tensor4 (AeArena * a, AeTensor * t, int64_t n, int64_t c,
    int64_t h, int64_t w, AeError * err);
int ae_arena_tensor3 (AeArena * a, AeTensor * t, int64_t n, int64_t l,
    int64_t c, AeError * err);
int ae_arena_tensor2 (AeArena * a, AeTensor * t, int64_t n, int64_t c,
    AeError * err);

/* Stack discipline for temporaries: everything allocated after the mark is
 * given back by ae_arena_release (mark). */
size_t ae_arena_mark (const AeArena * a);
void ae_arena_release (AeArena * a, size_t mark);

/* Frees every allocation. If overflow blocks were needed, the main block is
 * re-sized to the peak so that the next identical pass fits in it. */
int ae_arena_reset (AeArena * a, AeError * err);

#ifdef __cplusplus
}
#endif
#endif /* AE_TENSOR_H */
