/* The avatar engine's public header: everything an element or a tool needs
 * (tensors and arena, safetensors, config, ops, models, schedulers and the
 * sampling loop). All symbols are prefixed `ae_` / `Ae`. */
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

#endif /* AVATAR_ENGINE_H */
