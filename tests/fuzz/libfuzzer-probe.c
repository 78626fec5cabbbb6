/* Compiled at configure time to learn whether clang's libFuzzer is usable. */
#include <stddef.h>
#include <stdint.h>

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  return 0;
}
