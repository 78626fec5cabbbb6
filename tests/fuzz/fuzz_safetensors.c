/* libFuzzer target for the safetensors reader: every input is opened as a
 * .safetensors file and every tensor it declares is read as float32, so
 * the header validation and the dtype conversion both get fuzzed.
 * tests/fuzz/replay.c replays the corpus (corpus/safetensors/) through it
 * without libFuzzer. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput (const uint8_t * data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  char path[64];
  AeSafetensors *st = NULL;
  AeError err;
  int fd = memfd_create ("fuzz.safetensors", MFD_CLOEXEC);

  if (fd < 0)
    return 0;
  if (size > 0 && write (fd, data, size) != (ssize_t) size) {
    close (fd);
    return 0;
  }
  snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
  if (ae_st_open (&st, path, &err) == 0) {
    for (int i = 0; i < ae_st_count (st); i++) {
      const AeStTensorInfo *info = ae_st_info_at (st, i);
      AeTensor t;
      volatile float sink = 0.0f;
      if (ae_st_get (st, info->name, info->ndim, info->shape, &t, &err) == 0
          && ae_tensor_numel (&t) > 0)
        sink += t.data[ae_tensor_numel (&t) - 1];
      (void) sink;
    }
    ae_st_close (st);
  }
  close (fd);
  return 0;
}
