/* libFuzzer target for the OpenPose JSON reader. The first input byte picks
 * the mode (stream, datagram, one-shot) and, for streams, where the input
 * is cut into pushes; the rest is the data. Whatever comes in, the parser
 * must not crash, leak, keep more than its limit or make GLib log a
 * critical (fatal here: a critical is a misuse the parser should have
 * caught, e.g. an empty datagram handed to json-glib). */
#include "avatar-pose.h"

#include <glib.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t * data, size_t size);

/* Takes every result out; checks what a frame may hold. */
static void
drain (ApParser * parser)
{
  ApFrame frame;
  ApIssues issues;
  ApParseResult res;

  while ((res = ap_parser_next (parser, &frame, &issues)) != AP_NEED_DATA) {
    if (issues.n > AP_MAX_ISSUES || issues.n > issues.n_total)
      abort ();
    if (res == AP_DROPPED && issues.n_total == 0)
      abort ();                 /* every drop says why */
    if (res == AP_FRAME && (frame.n_people < 0
            || frame.n_people > AP_MAX_PEOPLE || frame.canvas_width < 1
            || frame.canvas_height < 1))
      abort ();
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  ApParser *parser;
  uint8_t mode;

  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
  if (size < 1)
    return 0;
  mode = data[0];
  data++;
  size--;
  parser = ap_parser_new (256 + (mode & 0x0f) * 64);

  if ((mode >> 4) % 3 == 0) {
    /* Stream: pushes of (mode & 0x0f) + 1 bytes, then one last push. */
    size_t step = (mode & 0x0f) + 1, off = 0;
    for (; off + step < size; off += step) {
      ap_parser_push (parser, (const char *) data + off, step);
      drain (parser);
    }
    ap_parser_push (parser, (const char *) data + off, size - off);
    drain (parser);
    ap_parser_finish (parser);
    drain (parser);
  } else if ((mode >> 4) % 3 == 1) {
    /* Datagrams split at newlines. */
    size_t start = 0;
    for (size_t i = 0; i <= size; i++)
      if (i == size || data[i] == '\n') {
        ap_parser_push_datagram (parser, (const char *) data + start,
            i - start);
        start = i + 1;
      }
    drain (parser);
  } else {
    /* One whole text, then written back and read again. */
    ApFrame frame, again;
    ApIssues issues;
    if (ap_frame_from_json ((const char *) data, size, 1, &frame, &issues)
        == AP_FRAME) {
      char *json;
      ap_frame_select (&frame, (ApSelect) (mode % 3));
      json = ap_frame_to_json (&frame);
      if (ap_frame_from_json (json, strlen (json), 1, &again, &issues)
          != AP_FRAME || again.n_people != frame.n_people)
        abort ();
      free (json);
    }
  }
  ap_parser_free (parser);
  return 0;
}
