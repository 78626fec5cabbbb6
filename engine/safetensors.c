/* Safetensors reader (mmap, validated header) and writer; see
 * safetensors.h for the format and the guarantees. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <json-glib/json-glib.h>
#ifdef __F16C__
#include <immintrin.h>
#endif

#include "safetensors.h"

/* The format caps the header at 100 MB; a larger length is corrupt. */
#define AE_ST_MAX_HEADER (100u * 1000u * 1000u)

typedef struct {
  char *path;
  uint8_t *map;
  size_t size;
} AeStShard;

struct AeSafetensors
{
  char *path;
  GPtrArray *shards;            /* AeStShard* */
  GArray *infos;                /* AeStTensorInfo, sorted by name at the end */
  GHashTable *index;            /* name -> index+1 into infos */
  GHashTable *converted;        /* name -> float* owned copies */
};

static const struct {
  const char *name;
  size_t size;
} dtype_table[] = {
  [AE_DTYPE_F32] = {"F32", 4},
  [AE_DTYPE_F16] = {"F16", 2},
  [AE_DTYPE_BF16] = {"BF16", 2},
  [AE_DTYPE_F64] = {"F64", 8},
  [AE_DTYPE_I64] = {"I64", 8},
  [AE_DTYPE_I32] = {"I32", 4},
  [AE_DTYPE_I16] = {"I16", 2},
  [AE_DTYPE_I8] = {"I8", 1},
  [AE_DTYPE_U8] = {"U8", 1},
  [AE_DTYPE_BOOL] = {"BOOL", 1},
};

#define N_DTYPES ((int) (sizeof dtype_table / sizeof dtype_table[0]))

const char *
ae_dtype_name (AeDType dtype)
{
  if ((int) dtype < 0 || (int) dtype >= N_DTYPES)
    return NULL;
  return dtype_table[dtype].name;
}

size_t
ae_dtype_size (AeDType dtype)
{
  if ((int) dtype < 0 || (int) dtype >= N_DTYPES)
    return 0;
  return dtype_table[dtype].size;
}

static int
dtype_from_name (const char *name, AeDType * out)
{
  for (int i = 0; i < N_DTYPES; i++)
    if (strcmp (dtype_table[i].name, name) == 0) {
      *out = (AeDType) i;
      return 0;
    }
  return -1;
}

/* ---- reading -------------------------------------------------------- */

static void
shard_free (gpointer p)
{
  AeStShard *s = p;

  if (s->map && s->size)
    munmap (s->map, s->size);
  g_free (s->path);
  g_free (s);
}

static void
info_clear (gpointer p)
{
  AeStTensorInfo *info = p;

  g_free ((char *) info->name);
}

static int
map_file (const char *path, AeStShard ** out, AeError * err)
{
  struct stat sb;
  AeStShard *s;
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd < 0)
    return ae_error (err, "%s: cannot open: %s", path, strerror (errno));
  if (fstat (fd, &sb) < 0 || !S_ISREG (sb.st_mode)) {
    close (fd);
    return ae_error (err, "%s: not a regular file", path);
  }
  s = g_new0 (AeStShard, 1);
  s->path = g_strdup (path);
  s->size = (size_t) sb.st_size;
  if (s->size > 0) {
    /* Private writable mapping: pages stay shared with the page cache
     * until written, and a stray write cannot fault or reach the file. */
    s->map = mmap (NULL, s->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (s->map == MAP_FAILED) {
      s->map = NULL;
      close (fd);
      shard_free (s);
      return ae_error (err, "%s: mmap failed: %s", path, strerror (errno));
    }
  }
  close (fd);
  *out = s;
  return 0;
}

/* Reads a non-negative integer JSON node. */
static int
node_to_u64 (JsonNode * node, uint64_t * out)
{
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_INT64)
    return -1;
  if (json_node_get_int (node) < 0)
    return -1;
  *out = (uint64_t) json_node_get_int (node);
  return 0;
}

static int
parse_entry (AeSafetensors * st, AeStShard * sh, const char *name,
    JsonNode * node, const uint8_t * data, uint64_t data_size, AeError * err)
{
  const char *path = sh->path;
  JsonObject *obj;
  JsonArray *shape, *offsets;
  AeStTensorInfo info;
  const char *dtype_name;
  uint64_t begin, end, numel = 1;

  memset (&info, 0, sizeof info);
  if (!JSON_NODE_HOLDS_OBJECT (node))
    return ae_error (err, "%s: tensor '%s': header entry is not an object",
        path, name);
  obj = json_node_get_object (node);
  if (!json_object_has_member (obj, "dtype")
      || json_node_get_value_type (json_object_get_member (obj,
              "dtype")) != G_TYPE_STRING)
    return ae_error (err, "%s: tensor '%s': missing or non-string 'dtype'",
        path, name);
  dtype_name = json_object_get_string_member (obj, "dtype");
  if (dtype_from_name (dtype_name, &info.dtype) < 0)
    return ae_error (err, "%s: tensor '%s': unknown dtype '%s'", path, name,
        dtype_name);

  if (!json_object_has_member (obj, "shape")
      || !JSON_NODE_HOLDS_ARRAY (json_object_get_member (obj, "shape")))
    return ae_error (err, "%s: tensor '%s': missing or non-array 'shape'",
        path, name);
  shape = json_object_get_array_member (obj, "shape");
  if (json_array_get_length (shape) > AE_MAX_DIMS)
    return ae_error (err, "%s: tensor '%s': rank %u above %d", path, name,
        json_array_get_length (shape), AE_MAX_DIMS);
  info.ndim = (int) json_array_get_length (shape);
  for (int i = 0; i < info.ndim; i++) {
    uint64_t d;
    if (node_to_u64 (json_array_get_element (shape, i), &d) < 0
        || d > (1ull << 40))
      return ae_error (err, "%s: tensor '%s': bad shape entry %d", path,
          name, i);
    info.shape[i] = (int64_t) d;
    numel *= d;
    if (numel > (1ull << 40))
      return ae_error (err, "%s: tensor '%s': shape too large", path, name);
  }
  for (int i = info.ndim; i < AE_MAX_DIMS; i++)
    info.shape[i] = 1;

  if (!json_object_has_member (obj, "data_offsets")
      || !JSON_NODE_HOLDS_ARRAY (json_object_get_member (obj,
              "data_offsets")))
    return ae_error (err, "%s: tensor '%s': missing 'data_offsets'", path,
        name);
  offsets = json_object_get_array_member (obj, "data_offsets");
  if (json_array_get_length (offsets) != 2
      || node_to_u64 (json_array_get_element (offsets, 0), &begin) < 0
      || node_to_u64 (json_array_get_element (offsets, 1), &end) < 0)
    return ae_error (err, "%s: tensor '%s': 'data_offsets' must be two "
        "non-negative integers", path, name);
  if (begin > end || end > data_size)
    return ae_error (err, "%s: tensor '%s': data_offsets [%llu, %llu] out "
        "of range (data area is %llu bytes)", path, name,
        (unsigned long long) begin, (unsigned long long) end,
        (unsigned long long) data_size);
  if (end - begin != numel * ae_dtype_size (info.dtype))
    return ae_error (err, "%s: tensor '%s': data size %llu bytes does not "
        "match shape x dtype (%llu x %zu bytes)", path, name,
        (unsigned long long) (end - begin), (unsigned long long) numel,
        ae_dtype_size (info.dtype));
  if (g_hash_table_contains (st->index, name))
    return ae_error (err, "%s: tensor '%s' appears twice", path, name);

  info.name = g_strdup (name);
  info.data = data + begin;
  info.nbytes = (size_t) (end - begin);
  info.file = sh->path;
  g_array_append_val (st->infos, info);
  g_hash_table_insert (st->index, (gpointer) info.name,
      GUINT_TO_POINTER (st->infos->len));
  return 0;
}

static int
cmp_by_offset (const void *a, const void *b)
{
  const AeStTensorInfo *x = *(AeStTensorInfo * const *) a;
  const AeStTensorInfo *y = *(AeStTensorInfo * const *) b;

  if (x->data != y->data)
    return x->data < y->data ? -1 : 1;
  return x->nbytes < y->nbytes ? -1 : (x->nbytes > y->nbytes);
}

/* Tensors of one file must not share bytes. */
static int
check_overlaps (AeSafetensors * st, guint first, const char *path,
    AeError * err)
{
  guint n = st->infos->len - first;
  AeStTensorInfo **v;
  int ret = 0;

  if (n < 2)
    return 0;
  v = g_new (AeStTensorInfo *, n);
  for (guint i = 0; i < n; i++)
    v[i] = &g_array_index (st->infos, AeStTensorInfo, first + i);
  qsort (v, n, sizeof *v, cmp_by_offset);
  for (guint i = 1; i < n && ret == 0; i++) {
    const uint8_t *prev_end = (const uint8_t *) v[i - 1]->data
        + v[i - 1]->nbytes;
    if (v[i]->nbytes > 0 && v[i - 1]->nbytes > 0
        && (const uint8_t *) v[i]->data < prev_end)
      ret = ae_error (err, "%s: tensors '%s' and '%s' overlap", path,
          v[i - 1]->name, v[i]->name);
  }
  g_free (v);
  return ret;
}

static int
parse_file (AeSafetensors * st, const char *path, AeError * err)
{
  AeStShard *sh = NULL;
  uint64_t header_len = 0;
  JsonParser *parser;
  JsonObject *root;
  GError *gerr = NULL;
  GList *members, *l;
  guint first = st->infos->len;
  int ret = 0;

  if (map_file (path, &sh, err) < 0)
    return -1;
  g_ptr_array_add (st->shards, sh);
  if (sh->size < 8)
    return ae_error (err, "%s: truncated: %zu bytes, shorter than the "
        "8-byte header length", path, sh->size);
  for (int i = 7; i >= 0; i--)
    header_len = (header_len << 8) | sh->map[i];
  if (header_len > AE_ST_MAX_HEADER)
    return ae_error (err, "%s: header length %llu is implausible (above "
        "100 MB)", path, (unsigned long long) header_len);
  if (header_len > sh->size - 8)
    return ae_error (err, "%s: header length %llu runs past the end of the "
        "file (%zu bytes)", path, (unsigned long long) header_len, sh->size);
  if (header_len < 2)
    return ae_error (err, "%s: header of %llu bytes cannot hold JSON", path,
        (unsigned long long) header_len);

  parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, (const char *) sh->map + 8,
          (gssize) header_len, &gerr)) {
    ret = ae_error (err, "%s: malformed header JSON: %s", path,
        gerr->message);
    g_error_free (gerr);
    g_object_unref (parser);
    return ret;
  }
  if (json_parser_get_root (parser) == NULL
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))) {
    g_object_unref (parser);
    return ae_error (err, "%s: header JSON is not an object", path);
  }
  root = json_node_get_object (json_parser_get_root (parser));
  members = json_object_get_members (root);
  for (l = members; l && ret == 0; l = l->next) {
    const char *name = l->data;
    if (strcmp (name, "__metadata__") == 0)
      continue;
    ret = parse_entry (st, sh, name, json_object_get_member (root, name),
        sh->map + 8 + header_len, sh->size - 8 - header_len, err);
  }
  g_list_free (members);
  g_object_unref (parser);
  if (ret == 0)
    ret = check_overlaps (st, first, path, err);
  return ret;
}

static int
cmp_by_name (gconstpointer a, gconstpointer b)
{
  return strcmp (((const AeStTensorInfo *) a)->name,
      ((const AeStTensorInfo *) b)->name);
}

static void
rebuild_index (AeSafetensors * st)
{
  g_array_sort (st->infos, cmp_by_name);
  g_hash_table_remove_all (st->index);
  for (guint i = 0; i < st->infos->len; i++)
    g_hash_table_insert (st->index,
        (gpointer) g_array_index (st->infos, AeStTensorInfo, i).name,
        GUINT_TO_POINTER (i + 1));
}

/* Sharded checkpoint: {"weight_map": {"key": "shard file"}}. Each shard is
 * opened once; every key of the map must be found in its shard. */
static int
parse_index (AeSafetensors * st, const char *path, AeError * err)
{
  JsonParser *parser = json_parser_new ();
  GError *gerr = NULL;
  JsonObject *root, *map;
  GList *members, *l;
  GHashTable *opened = g_hash_table_new_full (g_str_hash, g_str_equal,
      g_free, NULL);
  char *dir = g_path_get_dirname (path);
  int ret = 0;

  if (!json_parser_load_from_mapped_file (parser, path, &gerr)) {
    ret = ae_error (err, "%s: cannot parse index: %s", path, gerr->message);
    g_error_free (gerr);
    goto out;
  }
  if (!JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))) {
    ret = ae_error (err, "%s: index is not a JSON object", path);
    goto out;
  }
  root = json_node_get_object (json_parser_get_root (parser));
  if (!json_object_has_member (root, "weight_map")
      || !JSON_NODE_HOLDS_OBJECT (json_object_get_member (root,
              "weight_map"))) {
    ret = ae_error (err, "%s: field 'weight_map' missing or not an object",
        path);
    goto out;
  }
  map = json_object_get_object_member (root, "weight_map");
  members = json_object_get_members (map);
  for (l = members; l && ret == 0; l = l->next) {
    JsonNode *node = json_object_get_member (map, l->data);
    const char *shard;
    char *shard_path;
    if (json_node_get_value_type (node) != G_TYPE_STRING) {
      ret = ae_error (err, "%s: weight_map['%s'] is not a string", path,
          (const char *) l->data);
      break;
    }
    shard = json_node_get_string (node);
    if (strchr (shard, '/') != NULL || strcmp (shard, "..") == 0) {
      ret = ae_error (err, "%s: weight_map['%s']: shard '%s' must be a "
          "file name beside the index", path, (const char *) l->data, shard);
      break;
    }
    if (g_hash_table_contains (opened, shard))
      continue;
    shard_path = g_build_filename (dir, shard, NULL);
    ret = parse_file (st, shard_path, err);
    g_free (shard_path);
    g_hash_table_add (opened, g_strdup (shard));
  }
  for (l = members; l && ret == 0; l = l->next) {
    gpointer idx = g_hash_table_lookup (st->index, l->data);
    const char *shard = json_object_get_string_member (map, l->data);
    char *base;
    if (idx == NULL) {
      ret = ae_error (err, "%s: tensor '%s' listed in weight_map is missing "
          "from shard '%s'", path, (const char *) l->data, shard);
      break;
    }
    base = g_path_get_basename (g_array_index (st->infos, AeStTensorInfo,
            GPOINTER_TO_UINT (idx) - 1).file);
    if (strcmp (base, shard) != 0)
      ret = ae_error (err, "%s: tensor '%s' is in '%s', weight_map says "
          "'%s'", path, (const char *) l->data, base, shard);
    g_free (base);
  }
  g_list_free (members);
out:
  g_free (dir);
  g_hash_table_unref (opened);
  g_object_unref (parser);
  return ret;
}

int
ae_st_open (AeSafetensors ** out, const char *path, AeError * err)
{
  AeSafetensors *st;
  char *file = NULL;
  int ret;

  *out = NULL;
  if (path == NULL)
    return ae_error (err, "safetensors: no path given");
  if (g_file_test (path, G_FILE_TEST_IS_DIR)) {
    file = g_build_filename (path, "diffusion_pytorch_model.safetensors",
        NULL);
    if (!g_file_test (file, G_FILE_TEST_EXISTS)) {
      g_free (file);
      file = g_build_filename (path,
          "diffusion_pytorch_model.safetensors.index.json", NULL);
      if (!g_file_test (file, G_FILE_TEST_EXISTS)) {
        g_free (file);
        return ae_error (err, "%s: no diffusion_pytorch_model.safetensors "
            "(or .safetensors.index.json) in this directory", path);
      }
    }
  } else {
    file = g_strdup (path);
  }

  st = g_new0 (AeSafetensors, 1);
  st->path = g_strdup (path);
  st->shards = g_ptr_array_new_with_free_func (shard_free);
  st->infos = g_array_new (FALSE, TRUE, sizeof (AeStTensorInfo));
  g_array_set_clear_func (st->infos, info_clear);
  st->index = g_hash_table_new (g_str_hash, g_str_equal);
  st->converted = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      g_free);
  if (g_str_has_suffix (file, ".index.json"))
    ret = parse_index (st, file, err);
  else
    ret = parse_file (st, file, err);
  g_free (file);
  if (ret < 0) {
    ae_st_close (st);
    return -1;
  }
  rebuild_index (st);
  *out = st;
  return 0;
}

void
ae_st_close (AeSafetensors * st)
{
  if (st == NULL)
    return;
  g_hash_table_unref (st->converted);
  g_hash_table_unref (st->index);
  g_array_unref (st->infos);
  g_ptr_array_unref (st->shards);
  g_free (st->path);
  g_free (st);
}

const char *
ae_st_path (const AeSafetensors * st)
{
  return st->path;
}

int
ae_st_count (const AeSafetensors * st)
{
  return (int) st->infos->len;
}

const AeStTensorInfo *
ae_st_info_at (const AeSafetensors * st, int i)
{
  if (i < 0 || (guint) i >= st->infos->len)
    return NULL;
  return &g_array_index (st->infos, AeStTensorInfo, i);
}

const AeStTensorInfo *
ae_st_find (const AeSafetensors * st, const char *name)
{
  gpointer idx = g_hash_table_lookup (st->index, name);

  if (idx == NULL)
    return NULL;
  return &g_array_index (st->infos, AeStTensorInfo, GPOINTER_TO_UINT (idx)
      - 1);
}

static float
half_to_float (uint16_t h)
{
  uint32_t sign = (uint32_t) (h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  float f;

  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);   /* inf / nan */
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    /* Subnormal half: value = mant * 2^-24, exact in float. */
    f = (float) mant * 0x1p-24f;
    return sign ? -f : f;
  }
  memcpy (&f, &bits, sizeof f);
  return f;
}

/* Converts numel elements of a known dtype to float32; -1 when the dtype
 * has no float meaning (BOOL). */
static int
convert_to_f32 (const AeStTensorInfo * info, float *dst, int64_t numel)
{
  const uint8_t *src = info->data;
  int64_t i = 0;

#ifdef __F16C__
  /* Hardware half->float, 8 at a time (SD checkpoints are mostly F16). */
  if (info->dtype == AE_DTYPE_F16)
    for (; i + 8 <= numel; i += 8) {
      __m128i h = _mm_loadu_si128 ((const __m128i *) (src + 2 * i));
      _mm256_storeu_ps (dst + i, _mm256_cvtph_ps (h));
    }
#endif
  for (; i < numel; i++) {
    switch (info->dtype) {
      case AE_DTYPE_F32:{
        float v;
        memcpy (&v, src + 4 * i, 4);
        dst[i] = v;
        break;
      }
      case AE_DTYPE_F16:{
        uint16_t h;
        memcpy (&h, src + 2 * i, 2);
        dst[i] = half_to_float (h);
        break;
      }
      case AE_DTYPE_BF16:{
        uint16_t h;
        uint32_t bits;
        memcpy (&h, src + 2 * i, 2);
        bits = (uint32_t) h << 16;
        memcpy (&dst[i], &bits, 4);
        break;
      }
      case AE_DTYPE_F64:{
        double v;
        memcpy (&v, src + 8 * i, 8);
        dst[i] = (float) v;
        break;
      }
      case AE_DTYPE_I64:{
        int64_t v;
        memcpy (&v, src + 8 * i, 8);
        dst[i] = (float) v;
        break;
      }
      case AE_DTYPE_I32:{
        int32_t v;
        memcpy (&v, src + 4 * i, 4);
        dst[i] = (float) v;
        break;
      }
      case AE_DTYPE_I16:{
        int16_t v;
        memcpy (&v, src + 2 * i, 2);
        dst[i] = (float) v;
        break;
      }
      case AE_DTYPE_I8:
        dst[i] = (float) (int8_t) src[i];
        break;
      case AE_DTYPE_U8:
        dst[i] = (float) src[i];
        break;
      default:
        return -1;
    }
  }
  return 0;
}

/* After conversion the source bytes are not read again: give their pages
 * back so resident memory holds the float32 copy only, not both. The
 * mapping is private and file-backed, so this loses nothing. */
static void
drop_pages (const AeStTensorInfo * info)
{
  uintptr_t page = (uintptr_t) sysconf (_SC_PAGESIZE);
  uintptr_t begin = ((uintptr_t) info->data + page - 1) & ~(page - 1);
  uintptr_t end = ((uintptr_t) info->data + info->nbytes) & ~(page - 1);

  if (end > begin)
    madvise ((void *) begin, end - begin, MADV_DONTNEED);
}

static int
lookup_checked (AeSafetensors * st, const char *name, int ndim,
    const int64_t * expect, const AeStTensorInfo ** out, AeError * err)
{
  const AeStTensorInfo *info = ae_st_find (st, name);
  char a[160], b[160];
  bool ok;

  if (info == NULL)
    return ae_error (err, "%s: missing tensor '%s'", st->path, name);
  if (expect == NULL) {
    *out = info;
    return 0;
  }
  ok = info->ndim == ndim;
  for (int i = 0; ok && i < ndim; i++)
    if (expect[i] >= 0 && expect[i] != info->shape[i])
      ok = false;
  if (!ok)
    return ae_error (err, "%s: tensor '%s': expected %s, found %s",
        info->file, name, ae_shape_str (ndim, expect, a, sizeof a),
        ae_shape_str (info->ndim, info->shape, b, sizeof b));
  *out = info;
  return 0;
}

int
ae_st_get (AeSafetensors * st, const char *name, int ndim,
    const int64_t * expect, AeTensor * out, AeError * err)
{
  const AeStTensorInfo *info;
  float *buf;
  int64_t numel;

  if (lookup_checked (st, name, ndim, expect, &info, err) < 0)
    return -1;
  *out = ae_tensor_nd (NULL, info->ndim, info->shape);
  numel = ae_tensor_numel (out);
  if (info->dtype == AE_DTYPE_F32 && ((uintptr_t) info->data & 3) == 0) {
    out->data = (float *) info->data;
    return 0;
  }
  buf = g_hash_table_lookup (st->converted, name);
  if (buf == NULL) {
    if (info->dtype == AE_DTYPE_BOOL)
      return ae_error (err, "%s: tensor '%s': dtype BOOL cannot be read as "
          "float", info->file, name);
    buf = g_try_malloc ((gsize) (numel ? numel : 1) * sizeof (float));
    if (buf == NULL)
      return ae_error (err, "%s: tensor '%s': out of memory converting %s",
          info->file, name, ae_dtype_name (info->dtype));
    convert_to_f32 (info, buf, numel);
    g_hash_table_insert (st->converted, g_strdup (name), buf);
    drop_pages (info);
  }
  out->data = buf;
  return 0;
}

int
ae_st_getf (AeSafetensors * st, AeTensor * out, int ndim,
    const int64_t * expect, AeError * err, const char *fmt, ...)
{
  char name[512];
  va_list args;

  va_start (args, fmt);
  vsnprintf (name, sizeof name, fmt, args);
  va_end (args);
  return ae_st_get (st, name, ndim, expect, out, err);
}

static int
check_numel (const AeStTensorInfo * info, int64_t numel, AeError * err)
{
  AeTensor t = ae_tensor_nd (NULL, info->ndim, info->shape);

  if (ae_tensor_numel (&t) != numel)
    return ae_error (err, "%s: tensor '%s': expected %lld elements, found "
        "%lld", info->file, info->name, (long long) numel,
        (long long) ae_tensor_numel (&t));
  return 0;
}

int
ae_st_read_f32 (AeSafetensors * st, const char *name, float *dst,
    int64_t numel, AeError * err)
{
  const AeStTensorInfo *info;

  if (lookup_checked (st, name, 0, NULL, &info, err) < 0
      || check_numel (info, numel, err) < 0)
    return -1;
  if (convert_to_f32 (info, dst, numel) < 0)
    return ae_error (err, "%s: tensor '%s': dtype %s cannot be read as "
        "float", info->file, name, ae_dtype_name (info->dtype));
  return 0;
}

int
ae_st_read_i64 (AeSafetensors * st, const char *name, int64_t * dst,
    int64_t numel, AeError * err)
{
  const AeStTensorInfo *info;
  const uint8_t *src;

  if (lookup_checked (st, name, 0, NULL, &info, err) < 0
      || check_numel (info, numel, err) < 0)
    return -1;
  src = info->data;
  for (int64_t i = 0; i < numel; i++) {
    switch (info->dtype) {
      case AE_DTYPE_I64:
        memcpy (&dst[i], src + 8 * i, 8);
        break;
      case AE_DTYPE_I32:{
        int32_t v;
        memcpy (&v, src + 4 * i, 4);
        dst[i] = v;
        break;
      }
      case AE_DTYPE_I16:{
        int16_t v;
        memcpy (&v, src + 2 * i, 2);
        dst[i] = v;
        break;
      }
      case AE_DTYPE_I8:
        dst[i] = (int8_t) src[i];
        break;
      case AE_DTYPE_U8:
        dst[i] = src[i];
        break;
      default:
        return ae_error (err, "%s: tensor '%s': dtype %s is not an integer "
            "type", info->file, name, ae_dtype_name (info->dtype));
    }
  }
  return 0;
}

/* ---- writer --------------------------------------------------------- */

typedef struct {
  char *name;
  AeDType dtype;
  int ndim;
  int64_t shape[AE_MAX_DIMS];
  void *data;
  size_t nbytes;
} AeStWEntry;

struct AeStWriter
{
  GArray *entries;              /* AeStWEntry */
  GHashTable *names;
  GPtrArray *meta;              /* key, value, key, value ... */
};

static void
wentry_clear (gpointer p)
{
  AeStWEntry *e = p;

  g_free (e->name);
  g_free (e->data);
}

AeStWriter *
ae_st_writer_new (void)
{
  AeStWriter *w = g_new0 (AeStWriter, 1);

  w->entries = g_array_new (FALSE, TRUE, sizeof (AeStWEntry));
  g_array_set_clear_func (w->entries, wentry_clear);
  w->names = g_hash_table_new (g_str_hash, g_str_equal);
  w->meta = g_ptr_array_new_with_free_func (g_free);
  return w;
}

void
ae_st_writer_free (AeStWriter * w)
{
  if (w == NULL)
    return;
  g_hash_table_unref (w->names);
  g_array_unref (w->entries);
  g_ptr_array_unref (w->meta);
  g_free (w);
}

int
ae_st_writer_add_raw (AeStWriter * w, const char *name, AeDType dtype,
    int ndim, const int64_t * shape, const void *data, AeError * err)
{
  AeStWEntry e;
  uint64_t numel = 1;

  if (name == NULL || name[0] == '\0' || strcmp (name, "__metadata__") == 0)
    return ae_error (err, "safetensors writer: invalid tensor name");
  if (ae_dtype_name (dtype) == NULL)
    return ae_error (err, "safetensors writer: tensor '%s': bad dtype", name);
  if (ndim < 0 || ndim > AE_MAX_DIMS)
    return ae_error (err, "safetensors writer: tensor '%s': rank %d", name,
        ndim);
  if (g_hash_table_contains (w->names, name))
    return ae_error (err, "safetensors writer: tensor '%s' added twice",
        name);
  memset (&e, 0, sizeof e);
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return ae_error (err, "safetensors writer: tensor '%s': negative "
          "dim", name);
    e.shape[i] = shape[i];
    numel *= (uint64_t) shape[i];
  }
  e.name = g_strdup (name);
  e.dtype = dtype;
  e.ndim = ndim;
  e.nbytes = (size_t) numel * ae_dtype_size (dtype);
  e.data = g_memdup2 (data, e.nbytes);
  g_array_append_val (w->entries, e);
  g_hash_table_add (w->names, g_array_index (w->entries, AeStWEntry,
          w->entries->len - 1).name);
  return 0;
}

int
ae_st_writer_add (AeStWriter * w, const char *name, const AeTensor * t,
    AeError * err)
{
  return ae_st_writer_add_raw (w, name, AE_DTYPE_F32, t->ndim, t->shape,
      t->data, err);
}

int
ae_st_writer_add_metadata (AeStWriter * w, const char *key,
    const char *value, AeError * err)
{
  if (key == NULL || value == NULL)
    return ae_error (err, "safetensors writer: NULL metadata");
  g_ptr_array_add (w->meta, g_strdup (key));
  g_ptr_array_add (w->meta, g_strdup (value));
  return 0;
}

static char *
build_header (AeStWriter * w, size_t * len)
{
  JsonBuilder *b = json_builder_new ();
  JsonGenerator *gen = json_generator_new ();
  JsonNode *root;
  uint64_t offset = 0;
  GString *s;
  char *json;

  json_builder_begin_object (b);
  if (w->meta->len > 0) {
    json_builder_set_member_name (b, "__metadata__");
    json_builder_begin_object (b);
    for (guint i = 0; i + 1 < w->meta->len; i += 2) {
      json_builder_set_member_name (b, g_ptr_array_index (w->meta, i));
      json_builder_add_string_value (b, g_ptr_array_index (w->meta, i + 1));
    }
    json_builder_end_object (b);
  }
  for (guint i = 0; i < w->entries->len; i++) {
    AeStWEntry *e = &g_array_index (w->entries, AeStWEntry, i);
    json_builder_set_member_name (b, e->name);
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "dtype");
    json_builder_add_string_value (b, ae_dtype_name (e->dtype));
    json_builder_set_member_name (b, "shape");
    json_builder_begin_array (b);
    for (int d = 0; d < e->ndim; d++)
      json_builder_add_int_value (b, e->shape[d]);
    json_builder_end_array (b);
    json_builder_set_member_name (b, "data_offsets");
    json_builder_begin_array (b);
    json_builder_add_int_value (b, (gint64) offset);
    json_builder_add_int_value (b, (gint64) (offset + e->nbytes));
    json_builder_end_array (b);
    json_builder_end_object (b);
    offset += e->nbytes;
  }
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  json = json_generator_to_data (gen, NULL);
  json_node_unref (root);
  g_object_unref (gen);
  g_object_unref (b);

  /* Pad with spaces so the data area starts 8-byte aligned. */
  s = g_string_new (json);
  g_free (json);
  while ((8 + s->len) % 8 != 0)
    g_string_append_c (s, ' ');
  *len = s->len;
  return g_string_free (s, FALSE);
}

int
ae_st_writer_save (AeStWriter * w, const char *path, AeError * err)
{
  size_t header_len;
  char *header = build_header (w, &header_len);
  uint8_t len_le[8];
  FILE *f = fopen (path, "wb");
  bool ok;

  if (f == NULL) {
    g_free (header);
    return ae_error (err, "%s: cannot create: %s", path, strerror (errno));
  }
  for (int i = 0; i < 8; i++)
    len_le[i] = (uint8_t) ((uint64_t) header_len >> (8 * i));
  ok = fwrite (len_le, 1, 8, f) == 8
      && fwrite (header, 1, header_len, f) == header_len;
  for (guint i = 0; ok && i < w->entries->len; i++) {
    AeStWEntry *e = &g_array_index (w->entries, AeStWEntry, i);
    ok = e->nbytes == 0 || fwrite (e->data, 1, e->nbytes, f) == e->nbytes;
  }
  g_free (header);
  if (fclose (f) != 0)
    ok = false;
  if (!ok)
    return ae_error (err, "%s: write failed: %s", path, strerror (errno));
  return 0;
}
