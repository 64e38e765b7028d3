/* Internal helpers shared by every part of the library: error reporting and logging. */
#ifndef SNNCL_INTERNAL_H
#define SNNCL_INTERNAL_H

#include "snncl.h"

#if defined(__GNUC__)
#define SNN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SNN_PRINTF(a, b)
#endif

/* Records a detailed message for snn_last_error(), logs it at debug level, and
 * returns status, so failures read `return snn_fail(SNN_ERR_SHAPE, "...", ...);`. */
snn_status snn_fail(snn_status status, const char *fmt, ...) SNN_PRINTF(2, 3);

/* snn_fail for a failed OpenCL or CLBlast call: also records its code for
 * snn_last_cl_error() (snn_fail and snn_clear_error reset it to 0; snn_fail_context
 * keeps it, since it only adds context to the same failure). */
snn_status snn_fail_cl(snn_status status, int code, const char *fmt, ...) SNN_PRINTF(3, 4);

/* Prefixes the current last-error message with context ("loading model: ..."). */
snn_status snn_fail_context(snn_status status, const char *fmt, ...) SNN_PRINTF(2, 3);

void snn_clear_error(void);

void snn_log(snn_log_level level, const char *fmt, ...) SNN_PRINTF(2, 3);

/* Propagates a failed status unchanged. */
#define SNN_TRY(expr)                                                                    \
    do {                                                                                 \
        snn_status snn_try_status_ = (expr);                                             \
        if (snn_try_status_ != SNN_OK) return snn_try_status_;                           \
    } while (0)

/* Fails with SNN_ERR_INVALID_ARG, naming the public function and the argument, when a
 * required pointer is NULL: `SNN_REQUIRE_ARG("snn_model_save", path);`. */
#define SNN_REQUIRE_ARG(fn, arg)                                                         \
    do {                                                                                 \
        if (!(arg)) return snn_fail(SNN_ERR_INVALID_ARG, "%s: %s is NULL", (fn), #arg);  \
    } while (0)

/* Jumps to a cleanup label, keeping the status in `st`. */
#define SNN_CHECK_GOTO(st, expr, label)                                                  \
    do {                                                                                 \
        (st) = (expr);                                                                   \
        if ((st) != SNN_OK) goto label;                                                  \
    } while (0)

#define SNN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
