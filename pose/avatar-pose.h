/* avatar-pose: keypoint data model, OpenPose JSON reader/writer and
 * pose-guidance drawing. Free of GStreamer (GLib and json-glib only), so the
 * avatar world, the tools and the elements share it.
 *
 * Symbols share the prefix ap_ / Ap.
 */
#ifndef AVATAR_POSE_H
#define AVATAR_POSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AP_BODY_N 18            /* COCO-18 (OpenPose "COCO" order) */
#define AP_FEET_N 6             /* BODY_25 19..24 */
#define AP_FACE_N 70            /* 68 iBUG points + 2 pupils */
#define AP_HAND_N 21
#define AP_MAX_PEOPLE 8

/* A canvas size missing from the JSON (plain OpenPose does not write one):
 * the stream's last canvas is used, and before any, this one. */
#define AP_DEFAULT_CANVAS_WIDTH 512
#define AP_DEFAULT_CANVAS_HEIGHT 512
#define AP_MAX_CANVAS 16384     /* larger canvas fields are errors */
#define AP_MAX_COORD 1.0e6      /* |x|, |y| or c above this: an error */
#define AP_CONFIDENT 0.3f       /* the references' visibility threshold */
#define AP_MAX_DEPTH 32         /* deeper JSON nesting is rejected unparsed */
#define AP_DEFAULT_MAX_OBJECT_BYTES (1024 * 1024)

enum { AP_LEFT = 0, AP_RIGHT = 1 };

/* COCO-18 body indices (the person's own left/right). */
enum {
  AP_NOSE, AP_NECK, AP_RSHOULDER, AP_RELBOW, AP_RWRIST, AP_LSHOULDER,
  AP_LELBOW, AP_LWRIST, AP_RHIP, AP_RKNEE, AP_RANKLE, AP_LHIP, AP_LKNEE,
  AP_LANKLE, AP_REYE, AP_LEYE, AP_REAR, AP_LEAR
};

/* Which parts a person's JSON carried (bitmask of ApPerson.parts). */
enum {
  AP_PART_BODY = 1 << 0,
  AP_PART_FEET = 1 << 1,
  AP_PART_FACE = 1 << 2,
  AP_PART_HAND_LEFT = 1 << 3,
  AP_PART_HAND_RIGHT = 1 << 4,
};

/* One keypoint in pixels of the frame's canvas. c is the detector's
 * confidence (may exceed 1 for raw DWPose scores); c <= 0 means missing. */
typedef struct {
  float x, y, c;
} ApPoint;

typedef struct {
  ApPoint body[AP_BODY_N];      /* always COCO-18 order; BODY_25 is mapped */
  ApPoint feet[AP_FEET_N];      /* LBigToe LSmallToe LHeel RBigToe RSmallToe RHeel */
  ApPoint face[AP_FACE_N];      /* n_face valid entries */
  ApPoint hand[2][AP_HAND_N];   /* [AP_LEFT], [AP_RIGHT] */
  int n_face;                   /* 0, 68 or 70 */
  unsigned parts;               /* AP_PART_* present in the input */
} ApPerson;

typedef struct {
  int canvas_width, canvas_height;
  int n_people;
  ApPerson people[AP_MAX_PEOPLE];
  int has_time;                 /* the JSON carried the "time" field */
  double time_s;                /* "time": seconds from stream start */
} ApFrame;

void ap_frame_init (ApFrame * frame);

/* Bounding box (x0, y0, x1, y1) of the person's points with c > AP_CONFIDENT
 * (body, feet, face, hands). Returns how many points it spans; box is
 * all zero when none. */
int ap_person_box (const ApPerson * person, float box[4]);

/* Maps every point from the frame's canvas onto a width x height image and
 * makes that the canvas: stretched as SPEC section 1 says, or, with
 * keep_aspect, scaled uniformly and centred (letterbox), as ap_draw does. */
void ap_frame_map_to (ApFrame * frame, int width, int height, int keep_aspect);

/* ---- Problems found in input -------------------------------------------- */

/* One problem with one frame: where (line or datagram number, counted from
 * 1, and the JSON field) and what. */
typedef struct {
  long line;
  int datagram;                 /* 1: line counts datagrams, not lines */
  char field[64];
  char message[160];
} ApIssue;

#define AP_MAX_ISSUES 8
typedef struct {
  int n;                        /* stored issues (<= AP_MAX_ISSUES) */
  int n_total;                  /* all issues, stored or not */
  ApIssue items[AP_MAX_ISSUES];
} ApIssues;

void ap_issues_clear (ApIssues * issues);
void ap_issues_add (ApIssues * issues, long line, int datagram,
    const char *field, const char *format, ...)
    __attribute__((format (printf, 5, 6)));
/* "line 12, people[0].pose_keypoints_2d: wrong length 51" into buf. */
void ap_issue_format (const ApIssue * issue, char *buf, size_t size);

/* ---- Reading OpenPose JSON ---------------------------------------------- */

typedef enum {
  AP_NEED_DATA = 0,             /* no complete object queued */
  AP_FRAME,                     /* *frame filled; issues may list parts treated as missing */
  AP_DROPPED,                   /* a frame was dropped; issues says why */
} ApParseResult;

typedef struct ApParser ApParser;

/* max_object_bytes bounds memory: a longer object is dropped (and the
 * parser resynchronises at the next top-level object). */
ApParser *ap_parser_new (size_t max_object_bytes);
void ap_parser_free (ApParser * parser);
/* Stream mode: objects may span pushes; JSON Lines or concatenated or
 * pretty-printed objects. Pushed bytes are held until ap_parser_next()
 * scans them: call it until AP_NEED_DATA after each push. The rules for
 * bad input are in docs/pose-json.md. */
void ap_parser_push (ApParser * parser, const char *data, size_t len);
/* Datagram mode: one whole object per call; anything else is dropped. */
void ap_parser_push_datagram (ApParser * parser, const char *data, size_t len);
/* End of stream: a trailing incomplete object becomes AP_DROPPED. */
void ap_parser_finish (ApParser * parser);
/* Forget everything queued and start again at line 1 (flush). */
void ap_parser_reset (ApParser * parser);
ApParseResult ap_parser_next (ApParser * parser, ApFrame * frame,
    ApIssues * issues);

/* Parse one complete JSON text (line is used in issues). Returns AP_FRAME
 * or AP_DROPPED. */
ApParseResult ap_frame_from_json (const char *text, size_t len, long line,
    ApFrame * frame, ApIssues * issues);

/* One line of OpenPose JSON (no trailing newline), g_free() it. Bodies with
 * feet are written as BODY_25, others as COCO-18. */
char *ap_frame_to_json (const ApFrame * frame);

/* ---- People selection --------------------------------------------------- */

typedef enum {
  AP_SELECT_LARGEST,            /* the person with the largest keypoint box */
  AP_SELECT_FIRST,
  AP_SELECT_ALL,
} ApSelect;

void ap_frame_select (ApFrame * frame, ApSelect mode);

/* ---- Drawing pose-guidance images (golden/pose/SPEC.md) ------------------ */

typedef enum {
  AP_STYLE_DWPOSE,              /* plain DWPose/ControlNet (SPEC "A") */
  AP_STYLE_MIMICMOTION,         /* confidence-aware, supersampled (SPEC "B") */
} ApStyle;

/* Draws frame into rgb (width x height, 3 bytes a pixel, stride bytes a
 * row). keep_aspect: map the canvas uniformly and centre it (letterbox)
 * instead of stretching it. Returns 0, or -1 when out of memory. */
int ap_draw (const ApFrame * frame, ApStyle style, int keep_aspect,
    uint8_t * rgb, int width, int height, int stride);

#ifdef __cplusplus
}
#endif
#endif /* AVATAR_POSE_H */
