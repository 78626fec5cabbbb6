#include <stdarg.h>
#include <stdio.h>

#include "ae-error.h"

int
ae_error (AeError * err, const char *fmt, ...)
{
  va_list args;

  if (err == NULL)
    return -1;
  va_start (args, fmt);
  vsnprintf (err->msg, sizeof err->msg, fmt, args);
  va_end (args);
  return -1;
}
