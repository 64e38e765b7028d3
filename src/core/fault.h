/* Fault injection for tests: makes the N-th device allocation, enqueue or read fail as a
 * full or lost device would, so that every error path can be walked. Process-wide (as
 * SNNCL_FAULT, which arms it), with atomic counters: contexts in separate threads may
 * pass the injection points together (a fault then goes to whichever comes N-th).
 * Until armed or disarmed, an injection point costs one relaxed load and a branch. */
#ifndef SNNCL_FAULT_H
#define SNNCL_FAULT_H

#include <CL/cl.h>

#include "internal.h"

typedef enum snn_fault_kind {
    SNN_FAULT_NONE = 0,
    SNN_FAULT_ALLOC,  /* snn_buffer_create */
    SNN_FAULT_LAUNCH, /* kernel launches, buffer writes and fills, CLBlast GEMMs */
    SNN_FAULT_READ,   /* reads back to the host and clFinish */
    SNN_FAULT_KINDS
} snn_fault_kind;

/* Arms one fault: the event of `kind` numbered `n` (0 = the next) fails with `code`
 * (0: CL_MEM_OBJECT_ALLOCATION_FAILURE for allocations, CL_DEVICE_NOT_AVAILABLE
 * otherwise). Resets the event counters. */
void snn_fault_arm(snn_fault_kind kind, long n, cl_int code);
void snn_fault_disarm(void);
/* Events of `kind` seen since the last arm or disarm (none are counted before either). */
long snn_fault_events(snn_fault_kind kind);
/* Nonzero once the armed fault has been injected. */
int snn_fault_fired(void);

/* Arms from SNNCL_FAULT = "alloc:N", "launch:N" or "read:N", optionally ":CODE" with
 * CODE an OpenCL error number (-5) or name (CL_OUT_OF_RESOURCES). A malformed value is
 * an SNN_ERR_INVALID_ARG; unset or empty arms nothing. */
snn_status snn_fault_from_env(void);

/* Called at each injection point: CL_SUCCESS, or the error code to report instead. */
cl_int snn_fault_hit(snn_fault_kind kind);

#endif
