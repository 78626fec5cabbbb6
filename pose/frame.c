/* avatar-pose: the frame data model, issue lists and canvas mapping. */
#include "avatar-pose.h"

#include <glib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void
ap_frame_init (ApFrame * frame)
{
  memset (frame, 0, sizeof (*frame));
  frame->canvas_width = AP_DEFAULT_CANVAS_WIDTH;
  frame->canvas_height = AP_DEFAULT_CANVAS_HEIGHT;
}

void
ap_issues_clear (ApIssues * issues)
{
  issues->n = 0;
  issues->n_total = 0;
}

void
ap_issues_add (ApIssues * issues, long line, int datagram, const char *field,
    const char *format, ...)
{
  ApIssue *issue;
  va_list args;

  issues->n_total++;
  if (issues->n >= AP_MAX_ISSUES)
    return;
  issue = &issues->items[issues->n++];
  issue->line = line;
  issue->datagram = datagram;
  g_strlcpy (issue->field, field ? field : "", sizeof (issue->field));
  va_start (args, format);
  vsnprintf (issue->message, sizeof (issue->message), format, args);
  va_end (args);
}

void
ap_issue_format (const ApIssue * issue, char *buf, size_t size)
{
  snprintf (buf, size, "%s %ld%s%s: %s", issue->datagram ? "datagram" : "line",
      issue->line, issue->field[0] ? ", " : "", issue->field, issue->message);
}

/* Grows box by the confident points of one array. */
static int
box_add (const ApPoint * points, int n, float box[4], int count)
{
  for (int i = 0; i < n; i++) {
    const ApPoint *p = &points[i];
    if (!(p->c > AP_CONFIDENT) || !isfinite (p->x) || !isfinite (p->y))
      continue;
    if (count == 0 || p->x < box[0])
      box[0] = p->x;
    if (count == 0 || p->y < box[1])
      box[1] = p->y;
    if (count == 0 || p->x > box[2])
      box[2] = p->x;
    if (count == 0 || p->y > box[3])
      box[3] = p->y;
    count++;
  }
  return count;
}

int
ap_person_box (const ApPerson * person, float box[4])
{
  int count = 0;

  box[0] = box[1] = box[2] = box[3] = 0.0f;
  count = box_add (person->body, AP_BODY_N, box, count);
  count = box_add (person->feet, AP_FEET_N, box, count);
  count = box_add (person->face, person->n_face, box, count);
  count = box_add (person->hand[AP_LEFT], AP_HAND_N, box, count);
  count = box_add (person->hand[AP_RIGHT], AP_HAND_N, box, count);
  return count;
}

static void
map_points (ApPoint * points, int n, float sx, float sy, float ox, float oy)
{
  for (int i = 0; i < n; i++) {
    points[i].x = points[i].x * sx + ox;
    points[i].y = points[i].y * sy + oy;
  }
}

void
ap_frame_map_to (ApFrame * frame, int width, int height, int keep_aspect)
{
  float sx, sy, ox = 0.0f, oy = 0.0f;

  if (frame->canvas_width <= 0 || frame->canvas_height <= 0 || width <= 0
      || height <= 0)
    return;
  sx = (float) width / frame->canvas_width;
  sy = (float) height / frame->canvas_height;
  if (keep_aspect) {
    /* One scale for both axes; the unused band is split evenly. */
    float s = sx < sy ? sx : sy;
    ox = (width - frame->canvas_width * s) / 2.0f;
    oy = (height - frame->canvas_height * s) / 2.0f;
    sx = sy = s;
  }
  for (int i = 0; i < frame->n_people; i++) {
    ApPerson *p = &frame->people[i];
    map_points (p->body, AP_BODY_N, sx, sy, ox, oy);
    map_points (p->feet, AP_FEET_N, sx, sy, ox, oy);
    map_points (p->face, p->n_face, sx, sy, ox, oy);
    map_points (p->hand[AP_LEFT], AP_HAND_N, sx, sy, ox, oy);
    map_points (p->hand[AP_RIGHT], AP_HAND_N, sx, sy, ox, oy);
  }
  frame->canvas_width = width;
  frame->canvas_height = height;
}
