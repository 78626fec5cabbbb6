/* application/x-avatar-latents: one window of denoised latent frames per
 * buffer, from avatardiffuse to latentfuse. See docs/avatardiffuse.md,
 * section "Latent windows". */
#ifndef GST_AVATAR_LATENTS_H
#define GST_AVATAR_LATENTS_H

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_AVATAR_LATENTS_MEDIA_TYPE "application/x-avatar-latents"

/* Template caps: every field open. */
#define GST_AVATAR_LATENTS_CAPS \
  GST_AVATAR_LATENTS_MEDIA_TYPE ", " \
  "channels = (int) [ 1, 64 ], height = (int) [ 1, 1024 ], " \
  "width = (int) [ 1, 1024 ], window = (int) [ 1, 256 ], " \
  "overlap = (int) [ 0, 255 ], fusion = (string) { progressive, uniform }, " \
  "framerate = (fraction) [ 0/1, MAX ]"

#define GST_AVATAR_LATENTS_MAX_CHANNELS 64
#define GST_AVATAR_LATENTS_MAX_SIZE 1024
#define GST_AVATAR_LATENTS_MAX_WINDOW 256

/* "AVLW" read as a little-endian u32. */
#define GST_AVATAR_LATENTS_MAGIC 0x574c5641u
#define GST_AVATAR_LATENTS_VERSION 1

/* Header flags. LAST: the stream of windows ends with this one (EOS or a
 * caps change upstream): every frame still held leaves after it. */
#define GST_AVATAR_LATENTS_FLAG_LAST (1u << 0)

/* What the caps say. fusion: 0 progressive, 1 uniform (AeFusionMode). */
typedef struct {
  gint channels, height, width;
  gint window, overlap;
  gint fusion;
  gint fps_n, fps_d;
  gchar *model;                 /* avatardiffuse's model folder, or NULL */
} GstAvatarLatentsInfo;

/* The buffer: header, n_frames frame records, padding to header_size
 * (a multiple of 64), then n_frames * channels * height * width float32
 * in host byte order, frame-major (frame, channel, row, column). */
typedef struct {
  guint32 magic;                /* GST_AVATAR_LATENTS_MAGIC */
  guint16 version;              /* GST_AVATAR_LATENTS_VERSION */
  guint16 flags;                /* GST_AVATAR_LATENTS_FLAG_* */
  guint32 header_size;          /* bytes before the first latent float */
  guint32 n_frames;             /* frames in this window: 1 .. window */
  guint32 channels, height, width;
  guint32 window, overlap;      /* as in the caps */
  guint32 reserved;
  guint64 window_index;         /* k, from 0 in this stream */
  guint64 first_frame;          /* k * (window - overlap) */
  guint64 reserved2;
} GstAvatarLatentsHeader;       /* 64 bytes */

typedef struct {
  guint64 pts;                  /* the pose frame's timestamp, or NONE */
  guint64 duration;             /* its duration, or NONE */
  gint32 meta_index;            /* its GstAvatarKeypointMeta among the
                                 * buffer's keypoint metas, -1 = none */
  guint32 reserved;
} GstAvatarLatentsFrame;        /* 24 bytes */

/* A parsed, validated buffer (pointers into a mapping). */
typedef struct {
  const GstAvatarLatentsHeader *header;
  const GstAvatarLatentsFrame *frames;  /* header->n_frames */
  const float *latents;         /* header->n_frames * frame_floats */
  gsize frame_floats;           /* channels * height * width */
} GstAvatarLatentsView;

void gst_avatar_latents_info_init (GstAvatarLatentsInfo * info);
void gst_avatar_latents_info_clear (GstAvatarLatentsInfo * info);

/* Fixed caps for info. */
GstCaps *gst_avatar_latents_info_to_caps (const GstAvatarLatentsInfo * info);

/* Parses fixed caps; FALSE with *why set (static string) on a missing or
 * out-of-range field. */
gboolean gst_avatar_latents_info_from_caps (GstAvatarLatentsInfo * info,
    const GstCaps * caps, const gchar ** why);

gsize gst_avatar_latents_header_size (guint n_frames);
gsize gst_avatar_latents_buffer_size (const GstAvatarLatentsInfo * info,
    guint n_frames);

/* Fills the header and frame records (pts/duration NONE, meta -1) of a
 * mapped buffer of gst_avatar_latents_buffer_size () bytes. */
void gst_avatar_latents_write_header (guint8 * data,
    const GstAvatarLatentsInfo * info, guint64 window_index,
    guint64 first_frame, guint n_frames, guint flags);

/* Checks a mapped buffer against the caps: magic, version, sizes, frame
 * count, first_frame = window_index * stride. FALSE with a message in
 * why (why_size bytes) that names the field. Never reads out of range. */
gboolean gst_avatar_latents_parse (const guint8 * data, gsize size,
    const GstAvatarLatentsInfo * info, GstAvatarLatentsView * view,
    gchar * why, gsize why_size);

G_END_DECLS
#endif /* GST_AVATAR_LATENTS_H */
