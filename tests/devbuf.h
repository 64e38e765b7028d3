/* Host and device buffers for kernel tests, with NaN sentinels (tests/devbuf.c). */
#ifndef SNNCL_TEST_DEVBUF_H
#define SNNCL_TEST_DEVBUF_H

#include "context.h"
#include "testutil.h"

/* ck_assert_msg without Check's per-call bookkeeping, for checks inside element loops. */
#define expect_msg(cond, ...)                                                                                \
    do {                                                                                                     \
        if (!(cond))                                                                                         \
            ck_abort_msg(__VA_ARGS__);                                                                       \
    } while (0)

/* Quiet NaN with an index-dependent payload: a shifted copy does not match. */
uint32_t sentinel_bits(size_t i);
uint32_t bits_of(float f);
float *host_alloc(size_t n);
double *host_alloc_d(size_t n); /* zeroed */
void fill_sentinel(float *h, size_t from, size_t to);
int is_sentinel(const float *h, size_t i);
/* Fails unless h[from..to) still holds the sentinel pattern. */
void assert_sentinel(const float *h, size_t from, size_t to, const char *what);
/* A host array of n floats, all sentinel. */
float *sentinel_array(size_t n);
float *random_array(test_rng *r, size_t n, float lo, float hi);
cl_mem dev_upload(snn_context *ctx, const float *h, size_t n);
/* h's n floats followed by pad sentinels. */
cl_mem dev_upload_padded(snn_context *ctx, const float *h, size_t n, size_t pad);
/* A device buffer of n floats holding the sentinel pattern. */
cl_mem dev_sentinel(snn_context *ctx, size_t n);
/* Reads n floats (blocking; the queue is in order, so earlier kernels have finished). */
float *dev_download(snn_context *ctx, cl_mem m, size_t n);
void assert_bits_equal(const float *got, const float *want, size_t n, const char *what);

#endif
