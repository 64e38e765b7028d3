/* Host and device buffers for kernel tests, with NaN sentinels: every output buffer
 * gets padding of quiet NaNs with index-dependent payloads past its end, so a kernel
 * writing out of bounds is caught, and an input padded the same way shows reads out of
 * bounds as NaN. */
#include "devbuf.h"

#include <stdlib.h>
#include <string.h>

/* Quiet NaN with an index-dependent payload: a shifted copy does not match. */
uint32_t sentinel_bits(size_t i) {
    return 0x7fc00000u | (uint32_t)(((uint64_t)i * 2654435761u >> 7) & 0x3fffffu);
}

uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float *host_alloc(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

double *host_alloc_d(size_t n) {
    double *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

void fill_sentinel(float *h, size_t from, size_t to) {
    for (size_t i = from; i < to; i++) {
        uint32_t b = sentinel_bits(i);
        memcpy(&h[i], &b, sizeof b);
    }
}

int is_sentinel(const float *h, size_t i) { return bits_of(h[i]) == sentinel_bits(i); }

void assert_sentinel(const float *h, size_t from, size_t to, const char *what) {
    for (size_t i = from; i < to; i++)
        expect_msg(is_sentinel(h, i), "%s: padding element %zu was overwritten (now 0x%08x = %g)", what, i,
                   (unsigned)bits_of(h[i]), (double)h[i]);
}

/* A host array of n floats, all sentinel. */
float *sentinel_array(size_t n) {
    float *h = host_alloc(n);
    fill_sentinel(h, 0, n);
    return h;
}

float *random_array(test_rng *r, size_t n, float lo, float hi) {
    float *h = host_alloc(n);
    test_fill_uniform(r, h, n, lo, hi);
    return h;
}

cl_mem dev_upload(snn_context *ctx, const float *h, size_t n) {
    cl_mem m;
    ck_assert_snn_ok(snn_buffer_create(ctx, (n ? n : 1) * sizeof(float), &m));
    if (n) ck_assert_snn_ok(snn_buffer_write(ctx, m, 0, n * sizeof(float), h));
    return m;
}

/* A device buffer of n floats holding the sentinel pattern. */
cl_mem dev_sentinel(snn_context *ctx, size_t n) {
    float *h = sentinel_array(n);
    cl_mem m = dev_upload(ctx, h, n);
    free(h);
    return m;
}

/* Reads n floats (blocking; the queue is in order, so earlier kernels have finished). */
float *dev_download(snn_context *ctx, cl_mem m, size_t n) {
    float *h = host_alloc(n);
    ck_assert_snn_ok(snn_buffer_read(ctx, m, 0, n * sizeof(float), h));
    return h;
}

void assert_bits_equal(const float *got, const float *want, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        expect_msg(bits_of(got[i]) == bits_of(want[i]), "%s: element %zu is %.9g, expected %.9g", what, i,
                   (double)got[i], (double)want[i]);
}

cl_mem dev_upload_padded(snn_context *ctx, const float *h, size_t n, size_t pad) {
    float *p = sentinel_array(n + pad);
    memcpy(p, h, n * sizeof(float));
    cl_mem m = dev_upload(ctx, p, n + pad);
    free(p);
    return m;
}
