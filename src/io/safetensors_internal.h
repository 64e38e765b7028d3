/* Internal entry points of the safetensors reader (src/io/safetensors.c). */
#ifndef SNNCL_SAFETENSORS_INTERNAL_H
#define SNNCL_SAFETENSORS_INTERNAL_H

#include <stddef.h>

#include "snncl.h"

/* snn_safetensors_read() on a file's bytes already in memory (the fuzzers use it to
 * skip the file system); name stands for the path in messages. */
snn_status snn_safetensors_read_memory(snn_safetensors **out, const char *name, const void *bytes,
                                       size_t size);

#endif
