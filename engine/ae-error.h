/* Errors in the avatar engine: every fallible call returns 0 on success or
 * -1 and fills an AeError whose message names the file and the key or field.
 * The engine never aborts and never exits on bad input. */
#ifndef AE_ERROR_H
#define AE_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  char msg[1024];
} AeError;

/* Formats into err (if not NULL) and returns -1, so callers can write
 * `return ae_error (err, "%s: ...", path);`. */
int ae_error (AeError * err, const char *fmt, ...)
    __attribute__((format (printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif /* AE_ERROR_H */
