/* Status codes, the per-thread last-error message, and the log callback. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *snn_status_str(snn_status status) {
    switch (status) {
#define SNN_STATUS_STR_(name, value, text) \
    case name:                             \
        return text;
        SNN_STATUS_LIST(SNN_STATUS_STR_)
#undef SNN_STATUS_STR_
    }
    return "unknown status";
}

const char *snn_status_name(snn_status status) {
    switch (status) {
#define SNN_STATUS_NAME_(name, value, text) \
    case name:                              \
        return #name;
        SNN_STATUS_LIST(SNN_STATUS_NAME_)
#undef SNN_STATUS_NAME_
    }
    return "SNN_UNKNOWN";
}

const char *snn_version(void) { return SNNCL_VERSION_STRING; }

static _Thread_local char last_error[4096];
static _Thread_local int last_cl_code; /* the OpenCL/CLBlast code behind it, 0 if none */

const char *snn_last_error(void) { return last_error; }

int snn_last_cl_error(void) { return last_cl_code; }

void snn_clear_error(void) {
    last_error[0] = '\0';
    last_cl_code = 0;
}

/* Records a failure's message and the OpenCL/CLBlast code behind it (0: none). */
static snn_status record_failure(snn_status status, int code, const char *fmt, va_list ap) {
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    last_cl_code = code;
    snn_log(SNN_LOG_DEBUG, "%s: %s", snn_status_name(status), last_error);
    return status;
}

snn_status snn_report_error(snn_status status, const char *message) {
    return snn_fail(status, "%s", message ? message : "");
}

snn_status snn_fail_cl(snn_status status, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    record_failure(status, code, fmt, ap);
    va_end(ap);
    return status;
}

snn_status snn_fail(snn_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    record_failure(status, 0, fmt, ap);
    va_end(ap);
    return status;
}

snn_status snn_fail_context(snn_status status, const char *fmt, ...) {
    char prefix[1024], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    /* Truncation is acceptable for an error message. */
    size_t n = strlen(prefix);
    if (n > sizeof last_error - 3) n = sizeof last_error - 3;
    memcpy(last_error, prefix, n);
    memcpy(last_error + n, ": ", 2);
    size_t room = sizeof last_error - n - 3, k = strlen(old);
    if (k > room) k = room;
    memcpy(last_error + n + 2, old, k);
    last_error[n + 2 + k] = '\0';
    return status;
}

static void default_log(snn_log_level level, const char *message, void *user) {
    static const char *names[] = {"error", "warning", "info", "debug"};
    (void)user;
    fprintf(stderr, "snncl %s: %s\n", names[level], message);
}

static snn_log_fn log_fn = default_log;
static void *log_user = NULL;
/* An int, so that a level below SNN_LOG_ERROR (the enum may be unsigned) drops everything. */
static int log_max = SNN_LOG_WARN;

void snn_set_log_callback(snn_log_fn fn, void *user, snn_log_level max_level) {
    log_fn = fn ? fn : default_log;
    log_user = fn ? user : NULL;
    log_max = (int)max_level;
}

void snn_log(snn_log_level level, const char *fmt, ...) {
    char msg[4096];
    va_list ap;
    if ((int)level > log_max) return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_fn(level, msg, log_user);
}
