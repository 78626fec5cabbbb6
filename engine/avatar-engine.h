/* The avatar engine's public header: everything an element or a tool needs
 * (tensors and arena, safetensors, config, ops, models, schedulers and the
 * sampling loop, the avatar pipeline: avatar-model.h, avatar-stream.h).
 * All symbols are prefixed `ae_` / `Ae`. */
#ifndef AVATAR_ENGINE_H
#define AVATAR_ENGINE_H

#include "ae-error.h"
#include "tensor.h"
#include "threads.h"
#include "safetensors.h"
#include "config.h"
#include "ops.h"
#include "unet.h"
#include "pose-guider.h"
#include "hand-encoder.h"
#include "scheduler.h"
#include "sampler.h"
#include "fusion.h"
#include "vae.h"
#include "taesd.h"
#include "image.h"
#include "avatar-model.h"
#include "avatar-stream.h"
#include "face-align.h"
#include "face-model.h"

#endif /* AVATAR_ENGINE_H */
