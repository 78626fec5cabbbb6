/* avatar-world: presenter identities from a seed. */
#include "world-private.h"

#include <string.h>

/* Skin tones from light to deep (sRGB), hair colours, clothing palettes:
 * broadcast-friendly, saturated enough to tell identities apart. */
static const uint8_t skin_tones[][3] = {
  {255, 224, 196}, {241, 194, 160}, {224, 172, 130}, {198, 140, 100},
  {168, 112, 76}, {141, 85, 54}, {110, 66, 42}, {84, 50, 32},
  {250, 210, 180}, {214, 160, 120},
};

static const uint8_t hair_colours[][3] = {
  {30, 22, 18}, {60, 40, 28}, {96, 62, 36}, {140, 96, 56}, {190, 150, 90},
  {226, 196, 130}, {150, 60, 30}, {120, 120, 125}, {215, 215, 210},
  {20, 20, 30}, {80, 30, 60},
};

static const uint8_t cloth_colours[][3] = {
  {24, 40, 80}, {40, 44, 52}, {120, 20, 30}, {30, 90, 70}, {200, 200, 205},
  {60, 100, 170}, {150, 110, 60}, {90, 40, 110}, {230, 120, 40},
  {20, 20, 24}, {180, 40, 70}, {70, 130, 120}, {240, 230, 210},
};

static const uint8_t eye_colours[][3] = {
  {70, 45, 25}, {40, 25, 15}, {60, 100, 140}, {70, 110, 70}, {110, 80, 40},
};

static void
copy3 (uint8_t dst[3], const uint8_t src[3])
{
  dst[0] = src[0];
  dst[1] = src[1];
  dst[2] = src[2];
}

static void
pick (uint8_t dst[3], const uint8_t (*table)[3], int n, uint64_t h)
{
  copy3 (dst, table[h % (uint64_t) n]);
}

/* A colour mixed a little towards white or black by the hash, so that
 * neighbouring seeds with the same palette entry still differ. */
static void
jitter (uint8_t c[3], uint64_t h, int amount)
{
  int d = (int) (h % (uint64_t) (2 * amount + 1)) - amount;
  for (int i = 0; i < 3; i++) {
    int v = c[i] + d + (int) ((h >> (8 + 4 * i)) % 7) - 3;
    c[i] = (uint8_t) (v < 0 ? 0 : v > 255 ? 255 : v);
  }
}

void
aw_identity_default (AwIdentity * id)
{
  static const uint8_t skin[3] = { 224, 172, 130 };
  static const uint8_t hair[3] = { 60, 40, 28 };

  memset (id, 0, sizeof (*id));
  copy3 (id->skin, skin);
  copy3 (id->hair, hair);
  copy3 (id->eye, eye_colours[0]);
  id->lip[0] = 180;
  id->lip[1] = 90;
  id->lip[2] = 85;
  copy3 (id->cloth, cloth_colours[0]);
  copy3 (id->cloth2, cloth_colours[5]);
  id->shirt[0] = id->shirt[1] = id->shirt[2] = 240;
  copy3 (id->logo, cloth_colours[8]);
  id->bg[0] = 40;
  id->bg[1] = 70;
  id->bg[2] = 120;
  id->bg2[0] = 12;
  id->bg2[1] = 24;
  id->bg2[2] = 50;
  id->hair_style = AW_HAIR_SHORT;
  id->pattern = AW_CLOTH_SUIT;
  id->background = AW_BG_STUDIO;
  id->has_tie = 1;
  id->pattern_period = 0.25f;
  id->head_size = 0.68f;
  id->neck_len = 0.36f;
  id->torso_len = 2.7f;
  id->upper_arm = 1.25f;
  id->forearm = 1.1f;
  id->hand_size = 0.95f;
  id->brow_weight = 1.0f;
  /* Half-body framing at a square canvas: neck at 60 % of the height,
   * shoulders spanning 40 % of it. */
  id->frame_x = 0.5f;
  id->frame_y = 0.63f;
  id->frame_scale = 0.20f;
}

void
aw_identity_from_seed (uint32_t seed, AwIdentity * id)
{
  uint64_t s = aw_hash2 (0x1D1D1D1Dull, seed);

  aw_identity_default (id);
  id->seed = seed;
  if (seed == 0)
    return;

  pick (id->skin, skin_tones, 10, aw_hash2 (s, 1));
  jitter (id->skin, aw_hash2 (s, 2), 8);
  pick (id->hair, hair_colours, 11, aw_hash2 (s, 3));
  jitter (id->hair, aw_hash2 (s, 4), 10);
  pick (id->eye, eye_colours, 5, aw_hash2 (s, 5));
  for (int i = 0; i < 3; i++)
    id->lip[i] = (uint8_t) (id->skin[i] * 0.72 + (i == 0 ? 60 : 10));
  pick (id->cloth, cloth_colours, 13, aw_hash2 (s, 6));
  jitter (id->cloth, aw_hash2 (s, 7), 12);
  pick (id->cloth2, cloth_colours, 13, aw_hash2 (s, 8));
  if (memcmp (id->cloth2, id->cloth, 3) == 0)
    pick (id->cloth2, cloth_colours, 13, aw_hash2 (s, 9) + 1);
  pick (id->logo, cloth_colours, 13, aw_hash2 (s, 10));
  {
    int light = aw_unit (aw_hash2 (s, 11)) < 0.7;
    for (int i = 0; i < 3; i++)
      id->shirt[i] = light ? (uint8_t) (215 + (aw_hash2 (s, 12 + i) % 40))
          : (uint8_t) (aw_hash2 (s, 12 + i) % 200);
  }
  for (int i = 0; i < 3; i++) {
    id->bg[i] = (uint8_t) (30 + aw_hash2 (s, 20 + i) % 200);
    id->bg2[i] = (uint8_t) (id->bg[i] * aw_range (aw_hash2 (s, 23 + i), 0.3,
            0.8));
  }
  id->hair_style = (AwHairStyle) (aw_hash2 (s, 30) % AW_HAIR_N);
  id->pattern = (AwClothPattern) (aw_hash2 (s, 31) % AW_CLOTH_N);
  id->background = (AwBackground) (aw_hash2 (s, 32) % AW_BG_N);
  id->has_logo = aw_unit (aw_hash2 (s, 33)) < 0.4;
  id->has_glasses = aw_unit (aw_hash2 (s, 34)) < 0.3;
  id->has_earrings = aw_unit (aw_hash2 (s, 35)) < 0.3;
  id->has_tie = id->pattern == AW_CLOTH_SUIT && aw_unit (aw_hash2 (s, 36)) < 0.6;
  id->sleeves_short = id->pattern != AW_CLOTH_SUIT
      && aw_unit (aw_hash2 (s, 37)) < 0.25;
  id->pattern_period = (float) aw_range (aw_hash2 (s, 38), 0.14, 0.4);
  id->pattern_angle = aw_unit (aw_hash2 (s, 39)) < 0.5 ? 0.0f
      : (float) aw_range (aw_hash2 (s, 40), -0.8, 0.8);
  id->head_size = (float) aw_range (aw_hash2 (s, 41), 0.62, 0.76);
  id->neck_len = (float) aw_range (aw_hash2 (s, 42), 0.3, 0.44);
  id->torso_len = (float) aw_range (aw_hash2 (s, 43), 2.4, 3.0);
  id->upper_arm = (float) aw_range (aw_hash2 (s, 44), 1.15, 1.35);
  id->forearm = (float) aw_range (aw_hash2 (s, 45), 1.0, 1.2);
  id->hand_size = (float) aw_range (aw_hash2 (s, 46), 0.85, 1.05);
  id->brow_weight = (float) aw_range (aw_hash2 (s, 47), 0.7, 1.4);
  id->frame_x = (float) aw_range (aw_hash2 (s, 48), 0.42, 0.58);
  id->frame_y = (float) aw_range (aw_hash2 (s, 49), 0.6, 0.68);
  id->frame_scale = (float) aw_range (aw_hash2 (s, 50), 0.17, 0.23);
}

void
aw_split_seeds (int heldout, uint32_t clip, uint32_t * identity_seed,
    uint32_t * motion_seed)
{
  if (heldout) {
    *identity_seed = AW_HELDOUT_IDENTITY_FIRST + clip % AW_HELDOUT_N;
    *motion_seed = AW_HELDOUT_MOTION_FIRST + clip % AW_HELDOUT_N;
    return;
  }
  /* 1 .. AW_TRAIN_SEED_LIMIT - 1: never 0 (the default presenter) and never
   * a held-out seed. */
  *identity_seed = 1 + (uint32_t) (aw_hash2 (0x7A11ull, clip)
      % (AW_TRAIN_SEED_LIMIT - 1));
  *motion_seed = 1 + (uint32_t) (aw_hash2 (0x3071ull, clip)
      % (AW_TRAIN_SEED_LIMIT - 1));
}
