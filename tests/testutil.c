#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *fixture_path(const char *name) {
    static char buf[4096];
    const char *dir = getenv("SNNCL_FIXTURES");
    snprintf(buf, sizeof buf, "%s/%s", dir ? dir : "tests/fixtures", name);
    return buf;
}

static char tmpdir[256];

static void remove_tmpdir(void) {
    char cmd[300];
    if (!tmpdir[0]) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

const char *test_tmpdir(void) {
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/snncl-test-XXXXXX");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            abort();
        }
        atexit(remove_tmpdir);
    }
    return tmpdir;
}

const char *tmp_path(const char *name) {
    static char bufs[4][4096];
    static int next;
    char *buf = bufs[next++ % 4];
    snprintf(buf, sizeof bufs[0], "%s/%s", test_tmpdir(), name);
    return buf;
}

void write_bytes(const char *path, const void *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    ck_assert_int_ge(size, 0);
    rewind(f);
    unsigned char *buf = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    buf[size] = 0;
    *n = (size_t)size;
    return buf;
}

static snn_context *ctx;

static void free_context(void) {
    snn_context_free(ctx);
    ctx = NULL;
}

snn_context *test_context(void) {
    if (!ctx) {
        snn_status st = snn_context_create(&ctx, NULL);
        if (st != SNN_OK) {
            fprintf(stderr, "no OpenCL context: %s: %s\n", snn_status_str(st), snn_last_error());
            abort();
        }
        atexit(free_context);
    }
    return ctx;
}

void test_rng_seed(test_rng *r, uint64_t seed) { r->s = seed * 0x9E3779B97F4A7C15ull + 1; }

uint32_t test_rng_u32(test_rng *r) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 16);
}

float test_rng_uniform(test_rng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)((test_rng_u32(r) >> 8) * (1.0 / 16777216.0));
}

float test_rng_normal(test_rng *r) {
    double u1 = ((test_rng_u32(r) >> 8) + 1.0) / 16777217.0, u2 = (test_rng_u32(r) >> 8) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void test_fill_uniform(test_rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = test_rng_uniform(r, lo, hi);
}

double max_rel_err(const float *a, const double *b, size_t n, double floor, size_t *at) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / fmax(fabs(b[i]), floor);
        if (!(d <= worst)) {
            worst = isnan(d) ? INFINITY : d;
            if (at) *at = i;
        }
    }
    return worst;
}

double max_abs_err_f(const float *a, const float *b, size_t n, size_t *at) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) {
            worst = isnan(d) ? INFINITY : d;
            if (at) *at = i;
        }
    }
    return worst;
}

int run_suite(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    /* Freed here, not only at exit: Oclgrind's runtime destroys per-thread state
     * before atexit handlers run, so OpenCL calls made from one crash under it (with
     * CK_FORK=no the context lives in this process). */
    free_context();
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
