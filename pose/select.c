/* avatar-pose: choosing which people of a frame to keep. */
#include "avatar-pose.h"

#include <string.h>

static float
person_area (const ApPerson * person)
{
  float box[4];

  if (ap_person_box (person, box) < 2)
    return 0.0f;
  return (box[2] - box[0]) * (box[3] - box[1]);
}

void
ap_frame_select (ApFrame * frame, ApSelect mode)
{
  int best = 0;
  float best_area = -1.0f;

  if (frame->n_people <= 1 || mode == AP_SELECT_ALL)
    return;
  if (mode == AP_SELECT_LARGEST) {
    /* Ties keep the earlier person, so the choice is stable. */
    for (int i = 0; i < frame->n_people; i++) {
      float area = person_area (&frame->people[i]);
      if (area > best_area) {
        best_area = area;
        best = i;
      }
    }
  }
  if (best != 0)
    memcpy (&frame->people[0], &frame->people[best], sizeof (ApPerson));
  frame->n_people = 1;
}
