/* libFuzzer target for the safetensors reader: every input is opened as a
 * .safetensors file and every tensor it declares is read as float32, so
 * the header validation and the dtype conversion both get fuzzed.
 *
 * Built with -DAE_FUZZ_STANDALONE it has its own main() that replays the
 * files (or directories of files) named on the command line, which is how
 * the corpus runs as a plain test without libFuzzer. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

#ifdef AE_FUZZ_STANDALONE
static int
replay_file (const char *path)
{
  FILE *f = fopen (path, "rb");
  uint8_t *buf;
  long n;

  if (f == NULL) {
    fprintf (stderr, "%s: cannot open\n", path);
    return -1;
  }
  fseek (f, 0, SEEK_END);
  n = ftell (f);
  fseek (f, 0, SEEK_SET);
  buf = malloc (n > 0 ? (size_t) n : 1);
  if (buf == NULL || fread (buf, 1, (size_t) n, f) != (size_t) n) {
    fclose (f);
    free (buf);
    return -1;
  }
  fclose (f);
  LLVMFuzzerTestOneInput (buf, (size_t) n);
  free (buf);
  return 0;
}

int
main (int argc, char **argv)
{
  int count = 0;

  for (int i = 1; i < argc; i++) {
    DIR *d = opendir (argv[i]);
    struct dirent *e;
    if (d == NULL) {
      if (replay_file (argv[i]) < 0)
        return 1;
      count++;
      continue;
    }
    while ((e = readdir (d)) != NULL) {
      char p[4096];
      if (e->d_name[0] == '.')
        continue;
      snprintf (p, sizeof p, "%s/%s", argv[i], e->d_name);
      if (replay_file (p) < 0)
        return 1;
      count++;
    }
    closedir (d);
  }
  printf ("replayed %d inputs\n", count);
  return count > 0 ? 0 : 1;
}
#endif
