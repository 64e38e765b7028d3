/* Shared helpers for the Check test programs. */
#ifndef SNNCL_TESTUTIL_H
#define SNNCL_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "snncl.h"

/* Fails the current test with snn_last_error() when a call does not return SNN_OK. */
#define ck_assert_snn_ok(expr)                                                          \
    do {                                                                                \
        snn_status st_ = (expr);                                                        \
        ck_assert_msg(st_ == SNN_OK, "%s returned %s: %s", #expr, snn_status_name(st_), \
                      snn_last_error());                                                \
    } while (0)

#define ck_assert_snn_status(expr, want)                                                 \
    do {                                                                                 \
        snn_status st_ = (expr);                                                         \
        ck_assert_msg(st_ == (want), "%s returned %s, wanted %s (%s)", #expr,           \
                      snn_status_name(st_), snn_status_name(want), snn_last_error());    \
    } while (0)

/* Path of a committed fixture file (under $SNNCL_FIXTURES); static buffer. */
const char *fixture_path(const char *name);

/* A fresh temporary directory for this test process, removed at exit. */
const char *test_tmpdir(void);

/* A path under test_tmpdir(); four rotating static buffers. */
const char *tmp_path(const char *name);

/* Whole files; failures fail the test. read_bytes NUL-terminates its malloc'd copy. */
void write_bytes(const char *path, const void *bytes, size_t n);
unsigned char *read_bytes(const char *path, size_t *n);

/* A context on the default device, made once per process. */
snn_context *test_context(void);

/* Deterministic pseudo-random numbers for test data (xorshift, not Philox). */
typedef struct test_rng { uint64_t s; } test_rng;
void test_rng_seed(test_rng *r, uint64_t seed);
uint32_t test_rng_u32(test_rng *r);
float test_rng_uniform(test_rng *r, float lo, float hi);
float test_rng_normal(test_rng *r);
void test_fill_uniform(test_rng *r, float *x, size_t n, float lo, float hi);

/* Largest |a-b| / max(|b|, floor) over n elements; sets *at to its index if non-NULL. */
double max_rel_err(const float *a, const double *b, size_t n, double floor, size_t *at);
double max_abs_err_f(const float *a, const float *b, size_t n, size_t *at);

/* Runs a Check suite, returns the process exit code. */
int run_suite(Suite *s);

#endif
