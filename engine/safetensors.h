/* Safetensors reader and writer.
 *
 * Format: u64 little-endian header size N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 *  "__metadata__": {..}}, then the raw little-endian data; offsets are
 * relative to the byte after the header.
 *
 * ae_st_open() maps the file read-only (copy-on-write) and validates the
 * whole header before returning: header length inside the file, JSON well
 * formed, every dtype known, offsets inside the data area, size equal to
 * numel x dtype size, no two tensors overlapping. A path ending in
 * ".safetensors.index.json" opens a sharded checkpoint (its "weight_map"
 * names the shard of each key; shards live beside the index). A directory
 * opens DIR/diffusion_pytorch_model.safetensors, or its .index.json.
 *
 * Tensors are read as float32: F32 data is used in place when aligned,
 * F16/BF16/F64/I64/I32 are converted once into memory the AeSafetensors
 * owns. Pointers stay valid until ae_st_close(). */
#ifndef AE_SAFETENSORS_H
#define AE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "ae-error.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  AE_DTYPE_F32,
  AE_DTYPE_F16,
  AE_DTYPE_BF16,
  AE_DTYPE_F64,
  AE_DTYPE_I64,
  AE_DTYPE_I32,
  AE_DTYPE_I16,
  AE_DTYPE_I8,
  AE_DTYPE_U8,
  AE_DTYPE_BOOL,
} AeDType;

/* "F32" etc. ; NULL for an out-of-range value. */
const char *ae_dtype_name (AeDType dtype);
size_t ae_dtype_size (AeDType dtype);

typedef struct {
  const char *name;
  AeDType dtype;
  int ndim;
  int64_t shape[AE_MAX_DIMS];
  const void *data;             /* raw bytes inside the mapping */
  size_t nbytes;
  const char *file;             /* path of the file (shard) holding it */
} AeStTensorInfo;

typedef struct AeSafetensors AeSafetensors;

/* Opens a .safetensors file, a sharded .safetensors.index.json, or a
 * diffusers model directory. On error *out is NULL and err names the file
 * and, where there is one, the key. */
int ae_st_open (AeSafetensors ** out, const char *path, AeError * err);
void ae_st_close (AeSafetensors * st);

/* Path given to ae_st_open. */
const char *ae_st_path (const AeSafetensors * st);

/* Number of tensors and info by index (sorted by name) or by name (NULL
 * when absent). */
int ae_st_count (const AeSafetensors * st);
const AeStTensorInfo *ae_st_info_at (const AeSafetensors * st, int i);
const AeStTensorInfo *ae_st_find (const AeSafetensors * st, const char *name);

/* Float32 view of a tensor. `expect` (ndim entries, -1 = any size) may be
 * NULL to accept any shape. Errors: missing key ("FILE: missing tensor
 * 'KEY'"), wrong rank or shape ("FILE: tensor 'KEY': expected (64,32,3,3),
 * found (64,32,1,1)"), dtype not convertible to float. */
int ae_st_get (AeSafetensors * st, const char *name, int ndim,
    const int64_t * expect, AeTensor * out, AeError * err);

/* Same with the key built from a printf format (weights tables). */
int ae_st_getf (AeSafetensors * st, AeTensor * out, int ndim,
    const int64_t * expect, AeError * err, const char *fmt, ...)
    __attribute__((format (printf, 6, 7)));

/* Copies a tensor converted to float32 into dst (numel floats). */
int ae_st_read_f32 (AeSafetensors * st, const char *name, float *dst,
    int64_t numel, AeError * err);

/* Integer tensors (I64/I32/I16/I8/U8) copied as int64. */
int ae_st_read_i64 (AeSafetensors * st, const char *name, int64_t * dst,
    int64_t numel, AeError * err);

/* ---- writer --------------------------------------------------------- */

typedef struct AeStWriter AeStWriter;

AeStWriter *ae_st_writer_new (void);
void ae_st_writer_free (AeStWriter * w);

/* Adds a tensor; the data is copied now. F32 for AeTensor, any dtype for
 * the raw variant (data is numel x dtype size little-endian bytes). */
int ae_st_writer_add (AeStWriter * w, const char *name, const AeTensor * t,
    AeError * err);
int ae_st_writer_add_raw (AeStWriter * w, const char *name, AeDType dtype,
    int ndim, const int64_t * shape, const void *data, AeError * err);

/* Optional string metadata ("__metadata__"). */
int ae_st_writer_add_metadata (AeStWriter * w, const char *key,
    const char *value, AeError * err);

/* Writes the file (tensors in insertion order, header padded to 8 bytes). */
int ae_st_writer_save (AeStWriter * w, const char *path, AeError * err);

#ifdef __cplusplus
}
#endif
#endif /* AE_SAFETENSORS_H */
