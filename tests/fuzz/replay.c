/* Runs the fuzz target over every file of the corpus directories given on
 * the command line, without libFuzzer: the corpus is a regression test for
 * every compiler. */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput (const uint8_t * data, size_t size);

int
main (int argc, char **argv)
{
  int files = 0;

  for (int a = 1; a < argc; a++) {
    GDir *dir = g_dir_open (argv[a], 0, NULL);
    const char *name;
    if (dir == NULL) {
      fprintf (stderr, "cannot open corpus directory %s\n", argv[a]);
      return 1;
    }
    while ((name = g_dir_read_name (dir))) {
      char *path = g_build_filename (argv[a], name, NULL), *data;
      gsize len;
      if (g_file_get_contents (path, &data, &len, NULL)) {
        LLVMFuzzerTestOneInput ((const uint8_t *) data, len);
        g_free (data);
        files++;
      }
      g_free (path);
    }
    g_dir_close (dir);
  }
  printf ("replayed %d inputs\n", files);
  return files > 0 ? 0 : 1;
}
