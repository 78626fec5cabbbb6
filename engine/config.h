/* config.json helpers (json-glib). Every getter returns 0 or -1 with an
 * error naming the file and the field: "FILE: field 'norm_eps': missing",
 * "... expected a number, found string". The *_or variants return the
 * default when the field is missing or null, and still fail on a wrong
 * type. Integers accept integral JSON doubles (1.0), floats accept ints. */
#ifndef AE_CONFIG_H
#define AE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "ae-error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct AeConfig AeConfig;

int ae_config_load (AeConfig ** out, const char *path, AeError * err);
/* Parses JSON text; `name` is used in messages in place of a path. */
int ae_config_load_data (AeConfig ** out, const char *name, const char *json,
    AeError * err);
void ae_config_free (AeConfig * cfg);

const char *ae_config_path (const AeConfig * cfg);

/* Present and not null. */
bool ae_config_has (const AeConfig * cfg, const char *key);

int ae_config_get_int (const AeConfig * cfg, const char *key, int64_t * out,
    AeError * err);
int ae_config_get_int_or (const AeConfig * cfg, const char *key,
    int64_t def, int64_t * out, AeError * err);
int ae_config_get_float (const AeConfig * cfg, const char *key,
    double *out, AeError * err);
int ae_config_get_float_or (const AeConfig * cfg, const char *key,
    double def, double *out, AeError * err);
int ae_config_get_bool (const AeConfig * cfg, const char *key, bool * out,
    AeError * err);
int ae_config_get_bool_or (const AeConfig * cfg, const char *key, bool def,
    bool * out, AeError * err);
/* The string belongs to cfg. */
int ae_config_get_string (const AeConfig * cfg, const char *key,
    const char **out, AeError * err);
int ae_config_get_string_or (const AeConfig * cfg, const char *key,
    const char *def, const char **out, AeError * err);

/* Array of integers into out[0..max); *n = length. More than max elements
 * is an error. If `scalar_ok`, a single integer is accepted and returned as
 * a one-element list (attention_head_dim: int or list). */
int ae_config_get_int_list (const AeConfig * cfg, const char *key,
    int64_t * out, int max, int *n, bool scalar_ok, AeError * err);
/* Array of numbers (integers accepted) into out[0..max); *n = length. */
int ae_config_get_float_list (const AeConfig * cfg, const char *key,
    double *out, int max, int *n, AeError * err);
/* Array of strings; the strings belong to cfg. */
int ae_config_get_string_list (const AeConfig * cfg, const char *key,
    const char **out, int max, int *n, AeError * err);

#ifdef __cplusplus
}
#endif
#endif /* AE_CONFIG_H */
