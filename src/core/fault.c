/* Fault injection (see fault.h). */
#include "fault.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cl_errors.h"

/* Process-wide, as the environment that arms it; every field atomic, so contexts in
 * separate threads may pass the injection points together. Until the first arm or
 * disarm (`active`), an injection point is one relaxed load and a branch. */
static struct {
    atomic_int active;
    atomic_int kind;
    atomic_long at;
    atomic_int code;
    atomic_int fired;
    atomic_long events[SNN_FAULT_KINDS];
} fault;

static void reset(snn_fault_kind kind, long n, cl_int code) {
    atomic_store(&fault.kind, (int)kind);
    atomic_store(&fault.at, n);
    atomic_store(&fault.code, (int)code);
    atomic_store(&fault.fired, 0);
    for (int k = 0; k < SNN_FAULT_KINDS; k++) atomic_store(&fault.events[k], 0);
    atomic_store(&fault.active, 1);
}

void snn_fault_arm(snn_fault_kind kind, long n, cl_int code) {
    reset(kind, n, code ? code : kind == SNN_FAULT_ALLOC ? CL_MEM_OBJECT_ALLOCATION_FAILURE : CL_DEVICE_NOT_AVAILABLE);
}

void snn_fault_disarm(void) { reset(SNN_FAULT_NONE, 0, CL_SUCCESS); }

long snn_fault_events(snn_fault_kind kind) {
    return kind > SNN_FAULT_NONE && kind < SNN_FAULT_KINDS ? atomic_load(&fault.events[kind]) : 0;
}

int snn_fault_fired(void) { return atomic_load(&fault.fired); }

cl_int snn_fault_hit(snn_fault_kind kind) {
    if (!atomic_load_explicit(&fault.active, memory_order_relaxed)) return CL_SUCCESS;
    const long seen = atomic_fetch_add_explicit(&fault.events[kind], 1, memory_order_relaxed);
    if (atomic_load(&fault.kind) != (int)kind || seen != atomic_load(&fault.at)) return CL_SUCCESS;
    int unfired = 0;
    if (!atomic_compare_exchange_strong(&fault.fired, &unfired, 1)) return CL_SUCCESS;
    const cl_int code = (cl_int)atomic_load(&fault.code);
    snn_log(SNN_LOG_DEBUG, "injecting %s as fault %ld", snn_cl_error_name(code), seen);
    return code;
}

/* An OpenCL error given as a number or as the name snn_cl_error_name() prints. */
static int parse_code(const char *s, cl_int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end != s && !*end && !errno && v < 0 && v > -100000) {
        *out = (cl_int)v;
        return 1;
    }
    for (cl_int c = -1; c > -80; c--)
        if (strcmp(s, snn_cl_error_name(c)) == 0) {
            *out = c;
            return 1;
        }
    return 0;
}

snn_status snn_fault_from_env(void) {
    const char *env = getenv("SNNCL_FAULT");
    if (!env || !*env) return SNN_OK;
    static const char *const names[SNN_FAULT_KINDS] = {NULL, "alloc", "launch", "read"};
    snn_fault_kind kind = SNN_FAULT_NONE;
    const char *colon = strchr(env, ':');
    for (int k = 1; k < SNN_FAULT_KINDS && colon; k++)
        if ((size_t)(colon - env) == strlen(names[k]) && strncmp(env, names[k], strlen(names[k])) == 0)
            kind = (snn_fault_kind)k;
    char *end = NULL;
    long n = -1;
    if (kind != SNN_FAULT_NONE) {
        errno = 0;
        n = strtol(colon + 1, &end, 10);
        if (errno || end == colon + 1) n = -1;
    }
    cl_int code = 0;
    if (n < 0 || (*end && (*end != ':' || !parse_code(end + 1, &code))))
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "SNNCL_FAULT='%s' is not alloc:N, launch:N or read:N (N >= 0, optionally :CODE)", env);
    snn_fault_arm(kind, n, code);
    snn_log(SNN_LOG_WARN, "SNNCL_FAULT: %s number %ld will fail with %s", names[kind], n,
            snn_cl_error_name((cl_int)atomic_load(&fault.code)));
    return SNN_OK;
}
