/* Test helper (header only, for test_avatar.c and tests/vulkan): per-frame
 * stream inputs that change with the frame index f. Needs avatar-engine.h
 * (or avatar-stream.h) included before it. */
#ifndef AE_TEST_AVATAR_INPUTS_H
#define AE_TEST_AVATAR_INPUTS_H

#include <stdint.h>
#include <string.h>

/* A size x size pose frame: a few bright bars on black, moving with f
 * (what a drawing looks like to the pose guider). */
static void
test_make_pose (int64_t f, int size, uint8_t * rgb)
{
  int bw = size / 8, bh = 6;

  memset (rgb, 0, (size_t) size * size * 3);
  for (int bar = 0; bar < 3; bar++) {
    int x0 = (int) ((7 * f + 19 * bar) % (size - bw));
    int y0 = size / 8 + size / 4 * bar;
    for (int y = y0; y < y0 + bh && y < size; y++)
      for (int x = x0; x < x0 + bw; x++) {
        rgb[((size_t) y * size + x) * 3 + bar] = 255;
        rgb[((size_t) y * size + x) * 3 + (bar + 1) % 3] = (uint8_t) (40 * bar);
      }
  }
}

/* 42 hand points, confident, moving with f. */
static void
test_make_hands (int64_t f, float *kp)
{
  for (int k = 0; k < AE_AVATAR_HAND_KP; k++) {
    kp[3 * k] = 0.2f + 0.015f * k + 0.01f * (float) (f % 5);
    kp[3 * k + 1] = 0.7f - 0.01f * k + 0.02f * (float) (f % 3);
    kp[3 * k + 2] = 0.9f;
  }
}

#endif
