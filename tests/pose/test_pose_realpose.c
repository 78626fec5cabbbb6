/* The real recordings in ../shared/realpose and the golden inputs in
 * ../shared/golden/pose: every line parses without a single issue, frames
 * in = lines in, and every frame survives a write/read round trip.
 * Exit code 77 (skip) when ../shared is absent. */
#include "avatar-pose.h"

#include <glib.h>
#include <string.h>

static int failures;

static void
fail (const char *path, long line, const char *what)
{
  g_printerr ("FAIL %s line %ld: %s\n", path, line, what);
  failures++;
}

/* Rewrites frame as JSON and reads it back: the two must be identical. */
static void
check_round_trip (const char *path, long line, const ApFrame * frame)
{
  char *json = ap_frame_to_json (frame);
  ApFrame back;
  ApIssues issues;

  if (ap_frame_from_json (json, strlen (json), line, &back, &issues)
      != AP_FRAME || issues.n_total != 0)
    fail (path, line, "written frame does not read back");
  else if (back.n_people != frame->n_people
      || memcmp (back.people, frame->people,
          frame->n_people * sizeof (ApPerson)) != 0)
    fail (path, line, "round trip changed the keypoints");
  g_free (json);
}

static void
check_file (const char *path, int expect_people_max)
{
  ApParser *parser = ap_parser_new (0);
  char *text;
  gsize len;
  long lines = 0, frames = 0;
  ApFrame frame;
  ApIssues issues;
  ApParseResult res;
  int max_people = 0;

  if (!g_file_get_contents (path, &text, &len, NULL)) {
    fail (path, 0, "cannot read");
    return;
  }
  for (gsize i = 0; i < len; i++)
    lines += text[i] == '\n';
  /* Pushed in 4 KiB pieces, as filesrc would. */
  for (gsize off = 0; off <= len; off += 4096) {
    if (off < len)
      ap_parser_push (parser, text + off, MIN (4096, len - off));
    else
      ap_parser_finish (parser);
    while ((res = ap_parser_next (parser, &frame, &issues)) != AP_NEED_DATA) {
      char buf[300];
      if (issues.n > 0) {
        ap_issue_format (&issues.items[0], buf, sizeof (buf));
        /* Frames with more people than we keep are expected in the crowd
         * recording; everything else must be clean. */
        if (expect_people_max <= AP_MAX_PEOPLE
            || strcmp (issues.items[0].field, "people") != 0)
          fail (path, issues.items[0].line, buf);
      }
      if (res != AP_FRAME)
        continue;
      frames++;
      max_people = MAX (max_people, frame.n_people);
      if (frame.canvas_width <= AP_DEFAULT_CANVAS_WIDTH / 2)
        fail (path, frames, "canvas not read");
      check_round_trip (path, frames, &frame);
      ap_frame_select (&frame, AP_SELECT_LARGEST);
      if (max_people > 0 && frame.n_people != 1 && frame.n_people != 0)
        fail (path, frames, "select largest kept more than one");
    }
  }
  if (frames != lines)
    fail (path, 0, "frames out != lines in");
  if (max_people < MIN (expect_people_max, AP_MAX_PEOPLE))
    fail (path, 0, "fewer people than the recording has");
  g_print ("%s: %ld frames, up to %d people kept\n", path, frames,
      max_people);
  g_free (text);
  ap_parser_free (parser);
}

int
main (void)
{
  const char *shared = g_getenv ("AVATAR_SHARED_DIR");
  const char *sets[] = {
    "echomimicv2_gesture_good", "echomimicv2_halfbody_01",
    "echomimicv2_halfbody_02", "echomimicv2_gesture_fight",
    "openposer_dgs_du_wohn_wo", "openposer_dgs_psychologie",
    "badminton_multiperson_body25",
  };
  int found = 0;

  if (shared == NULL || !g_file_test (shared, G_FILE_TEST_IS_DIR)) {
    g_print ("SKIP: AVATAR_SHARED_DIR (../shared with realpose/) is absent\n");
    return 77;
  }
  for (guint i = 0; i < G_N_ELEMENTS (sets); i++) {
    char *path = g_build_filename (shared, "realpose", sets[i],
        "frames.jsonl", NULL);
    if (g_file_test (path, G_FILE_TEST_EXISTS)) {
      check_file (path, g_str_has_prefix (sets[i], "badminton") ? 12 : 1);
      found++;
    }
    g_free (path);
  }
  for (int s = 1; s <= 5; s++) {
    char *pattern = g_strdup_printf ("s%d_", s);
    char *dir = g_build_filename (shared, "golden", "pose", NULL);
    GDir *d = g_dir_open (dir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name (d)))
      if (g_str_has_prefix (name, pattern) && g_str_has_suffix (name, ".json")) {
        char *path = g_build_filename (dir, name, NULL);
        check_file (path, 1);
        found++;
        g_free (path);
      }
    if (d)
      g_dir_close (d);
    g_free (dir);
    g_free (pattern);
  }
  if (found == 0) {
    g_print ("SKIP: no realpose/*/frames.jsonl or golden/pose/*.json in %s\n",
        shared);
    return 77;
  }
  return failures ? 1 : 0;
}
