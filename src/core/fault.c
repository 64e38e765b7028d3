/* Fault injection (see fault.h). */
#include "fault.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"

static struct {
    snn_fault_kind kind;
    long at;
    cl_int code;
    int fired;
    long events[SNN_FAULT_KINDS];
} fault;

void snn_fault_arm(snn_fault_kind kind, long n, cl_int code) {
    memset(&fault, 0, sizeof fault);
    fault.kind = kind;
    fault.at = n;
    fault.code = code ? code
                      : kind == SNN_FAULT_ALLOC ? CL_MEM_OBJECT_ALLOCATION_FAILURE : CL_DEVICE_NOT_AVAILABLE;
}

void snn_fault_disarm(void) { memset(&fault, 0, sizeof fault); }

long snn_fault_events(snn_fault_kind kind) {
    return kind > SNN_FAULT_NONE && kind < SNN_FAULT_KINDS ? fault.events[kind] : 0;
}

int snn_fault_fired(void) { return fault.fired; }

cl_int snn_fault_hit(snn_fault_kind kind) {
    const long seen = fault.events[kind]++;
    if (fault.kind != kind || fault.fired || seen != fault.at) return CL_SUCCESS;
    fault.fired = 1;
    snn_log(SNN_LOG_DEBUG, "injecting %s as fault %ld", snn_cl_error_name(fault.code), seen);
    return fault.code;
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
            snn_cl_error_name(fault.code));
    return SNN_OK;
}
