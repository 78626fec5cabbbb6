/* AeTensor helpers and the bump arena (see tensor.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"

struct AeArenaBlock
{
  AeArenaBlock *next;
  size_t size;                  /* bytes this block accounts for in `used` */
  void *mem;
};

int64_t
ae_tensor_numel (const AeTensor * t)
{
  int64_t n = 1;

  for (int i = 0; i < t->ndim; i++)
    n *= t->shape[i];
  return n;
}

AeTensor
ae_tensor_nd (float *data, int ndim, const int64_t * shape)
{
  AeTensor t;

  memset (&t, 0, sizeof t);
  t.data = data;
  t.ndim = ndim < 0 ? 0 : (ndim > AE_MAX_DIMS ? AE_MAX_DIMS : ndim);
  for (int i = 0; i < AE_MAX_DIMS; i++)
    t.shape[i] = i < t.ndim ? shape[i] : 1;
  return t;
}

AeTensor
ae_tensor_1d (float *data, int64_t n0)
{
  int64_t s[1] = { n0 };
  return ae_tensor_nd (data, 1, s);
}

AeTensor
ae_tensor_2d (float *data, int64_t n0, int64_t n1)
{
  int64_t s[2] = { n0, n1 };
  return ae_tensor_nd (data, 2, s);
}

AeTensor
ae_tensor_3d (float *data, int64_t n0, int64_t n1, int64_t n2)
{
  int64_t s[3] = { n0, n1, n2 };
  return ae_tensor_nd (data, 3, s);
}

AeTensor
ae_tensor_4d (float *data, int64_t n0, int64_t n1, int64_t n2, int64_t n3)
{
  int64_t s[4] = { n0, n1, n2, n3 };
  return ae_tensor_nd (data, 4, s);
}

char *
ae_shape_str (int ndim, const int64_t * shape, char *buf, size_t size)
{
  size_t pos = 0;

  if (size == 0)
    return buf;
  buf[0] = '\0';
  pos += snprintf (buf + pos, size - pos, "(");
  for (int i = 0; i < ndim && pos < size; i++)
    pos += snprintf (buf + pos, size - pos, i ? ",%lld" : "%lld",
        (long long) shape[i]);
  if (pos < size)
    snprintf (buf + pos, size - pos, ")");
  return buf;
}

int
ae_tensor_reshape (AeTensor * t, int ndim, const int64_t * shape,
    AeError * err)
{
  AeTensor r;
  char a[128], b[128];

  if (ndim < 0 || ndim > AE_MAX_DIMS)
    return ae_error (err, "reshape: rank %d out of range", ndim);
  r = ae_tensor_nd (t->data, ndim, shape);
  if (ae_tensor_numel (&r) != ae_tensor_numel (t))
    return ae_error (err, "reshape %s to %s: element count differs",
        ae_shape_str (t->ndim, t->shape, a, sizeof a),
        ae_shape_str (ndim, shape, b, sizeof b));
  *t = r;
  return 0;
}

bool
ae_tensor_same_shape (const AeTensor * a, const AeTensor * b)
{
  if (a->ndim != b->ndim)
    return false;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i])
      return false;
  return true;
}

int
ae_tensor_check_shape (const AeTensor * t, const char *what, int ndim,
    const int64_t * expect, AeError * err)
{
  char a[128], b[128];
  bool ok = t->ndim == ndim;

  for (int i = 0; ok && i < ndim; i++)
    if (expect[i] >= 0 && expect[i] != t->shape[i])
      ok = false;
  if (ok)
    return 0;
  return ae_error (err, "%s: expected %s, found %s", what,
      ae_shape_str (ndim, expect, a, sizeof a),
      ae_shape_str (t->ndim, t->shape, b, sizeof b));
}

/* ---- arena ---------------------------------------------------------- */

static size_t
round_up (size_t n)
{
  return (n + AE_ARENA_ALIGN - 1) & ~(size_t) (AE_ARENA_ALIGN - 1);
}

static void
free_overflow (AeArena * a)
{
  while (a->overflow) {
    AeArenaBlock *next = a->overflow->next;
    free (a->overflow->mem);
    free (a->overflow);
    a->overflow = next;
  }
}

int
ae_arena_init (AeArena * a, size_t capacity, AeError * err)
{
  memset (a, 0, sizeof *a);
  return ae_arena_reserve (a, capacity, err);
}

void
ae_arena_clear (AeArena * a)
{
  free_overflow (a);
  free (a->base);
  memset (a, 0, sizeof *a);
}

int
ae_arena_reserve (AeArena * a, size_t bytes, AeError * err)
{
  free_overflow (a);
  a->used = 0;
  bytes = round_up (bytes);
  if (bytes <= a->capacity)
    return 0;
  free (a->base);
  a->base = NULL;
  a->capacity = 0;
  if (bytes == 0)
    return 0;
  a->base = aligned_alloc (AE_ARENA_ALIGN, bytes);
  if (a->base == NULL)
    return ae_error (err, "arena: out of memory reserving %zu bytes", bytes);
  a->capacity = bytes;
  return 0;
}

void *
ae_arena_alloc (AeArena * a, size_t bytes, AeError * err)
{
  AeArenaBlock *blk;

  bytes = round_up (bytes ? bytes : 1);
  /* Allocations are a stack: while no overflow block exists the next one
   * is carved from the main block. */
  if (a->overflow == NULL && a->used + bytes <= a->capacity) {
    void *p = a->base + a->used;
    a->used += bytes;
    if (a->used > a->peak)
      a->peak = a->used;
    return p;
  }
  /* Main block too small for this pass: give this allocation its own
   * block; ae_arena_reset() folds the peak into one block afterwards. */
  blk = calloc (1, sizeof *blk);
  if (blk)
    blk->mem = aligned_alloc (AE_ARENA_ALIGN, bytes);
  if (blk == NULL || blk->mem == NULL) {
    free (blk);
    ae_error (err, "arena: out of memory allocating %zu bytes", bytes);
    return NULL;
  }
  blk->size = bytes;
  blk->next = a->overflow;
  a->overflow = blk;
  a->used += bytes;
  a->grow_count++;
  if (a->used > a->peak)
    a->peak = a->used;
  return blk->mem;
}

int
ae_arena_tensor (AeArena * a, AeTensor * t, int ndim, const int64_t * shape,
    AeError * err)
{
  int64_t n;

  if (ndim < 0 || ndim > AE_MAX_DIMS)
    return ae_error (err, "arena: tensor rank %d out of range", ndim);
  *t = ae_tensor_nd (NULL, ndim, shape);
  n = ae_tensor_numel (t);
  if (n < 0)
    return ae_error (err, "arena: negative tensor size");
  t->data = ae_arena_alloc (a, (size_t) n * sizeof (float), err);
  return t->data ? 0 : -1;
}

int
ae_arena_tensor4 (AeArena * a, AeTensor * t, int64_t n, int64_t c,
    int64_t h, int64_t w, AeError * err)
{
  int64_t s[4] = { n, c, h, w };
  return ae_arena_tensor (a, t, 4, s, err);
}

int
ae_arena_tensor3 (AeArena * a, AeTensor * t, int64_t n, int64_t l,
    int64_t c, AeError * err)
{
  int64_t s[3] = { n, l, c };
  return ae_arena_tensor (a, t, 3, s, err);
}

int
ae_arena_tensor2 (AeArena * a, AeTensor * t, int64_t n, int64_t c,
    AeError * err)
{
  int64_t s[2] = { n, c };
  return ae_arena_tensor (a, t, 2, s, err);
}

size_t
ae_arena_mark (const AeArena * a)
{
  return a->used;
}

void
ae_arena_release (AeArena * a, size_t mark)
{
  /* Overflow blocks are pushed in allocation order, so those allocated
   * after the mark sit at the head of the list. */
  while (a->overflow && a->used - a->overflow->size >= mark) {
    AeArenaBlock *blk = a->overflow;
    a->overflow = blk->next;
    a->used -= blk->size;
    free (blk->mem);
    free (blk);
  }
  if (mark < a->used)
    a->used = mark;
}

int
ae_arena_reset (AeArena * a, AeError * err)
{
  bool grew = a->overflow != NULL || a->peak > a->capacity;
  size_t peak = a->peak;

  free_overflow (a);
  a->used = 0;
  if (grew && ae_arena_reserve (a, peak, err) < 0)
    return -1;
  a->peak = 0;
  return 0;
}
