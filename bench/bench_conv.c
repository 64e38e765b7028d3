/* The two paths of a 3x3 convolution on spike inputs, dense (im2col + GEMM) and sparse
 * (products of the nonzero inputs only, cl/conv_sparse.cl), at a range of input
 * densities, for the shapes of the default model's second and third convolutions:
 * where the sparse path stops paying is where ctx->sparse_density belongs.
 *   bench_conv [--runs 3] [--images 200] [--density D] [--device D]
 * Inputs are pooled spikes: each value is 0 with probability 1 - density, else one of
 * 1/4, 1/2, 3/4, 1. One line per shape and density: milliseconds (median of the runs,
 * each one op and a clFinish) of the forward product and of the weight gradient on
 * both paths, and the largest difference of the results relative to the largest |value|. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "context.h"
#include "ops.h"

static int fail(const char *what, snn_status st) {
    fprintf(stderr, "bench_conv: %s: %s: %s\n", what, snn_status_str(st), snn_last_error());
    return 1;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double uniform(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* Largest |a - b| over the largest |b|. */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return m > 0 ? d / m : d;
}

typedef struct timing {
    double ms;
    float *result;
} timing;

/* Runs the forward (wgrad = 0) or weight gradient (1) `runs` times at the given
 * sparse threshold; the median time and the last result (n floats). */
static snn_status time_op(snn_context *ctx, int wgrad, float threshold, int runs, cl_mem in, size_t C, size_t N,
                          size_t H, size_t W, cl_mem weight, size_t Cout, cl_mem dout, cl_mem out, size_t n,
                          snn_workspace *ws, snn_workspace *ws2, timing *t) {
    ctx->sparse_density = threshold;
    double *ms = malloc((size_t)(runs + 1) * sizeof *ms);
    if (!ms) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "timings");
    snn_status st = SNN_OK;
    for (int r = 0; r <= runs && st == SNN_OK; r++) { /* run 0 warms up */
        const double t0 = now();
        st = wgrad ? snn_op_conv3x3_backward(ctx, in, C, N, H, W, weight, Cout, dout, out, NULL, ws, ws2)
                   : snn_op_conv3x3(ctx, in, C, N, H, W, weight, Cout, out, ws);
        if (st == SNN_OK) st = snn_cl_check(clFinish(ctx->queue), "clFinish");
        ms[r] = 1e3 * (now() - t0);
    }
    if (st == SNN_OK) {
        qsort(ms + 1, (size_t)runs, sizeof *ms, cmp_double);
        t->ms = ms[1 + runs / 2];
        t->result = malloc(n * sizeof(float));
        if (!t->result) st = snn_fail(SNN_ERR_OUT_OF_MEMORY, "result");
        else st = snn_buffer_read(ctx, out, 0, n * sizeof(float), t->result);
    }
    free(ms);
    return st;
}

int main(int argc, char **argv) {
    const char *device = NULL;
    int runs = 3;
    long images = 200;
    double only_density = -1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--runs")) runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--images")) images = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--device")) device = argv[i + 1];
        else if (!strcmp(argv[i], "--density")) only_density = atof(argv[i + 1]);
        else {
            fprintf(stderr, "bench_conv: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (runs < 1 || images < 1 || only_density > 1) {
        fprintf(stderr, "bench_conv: bad --runs, --images or --density\n");
        return 2;
    }
    snn_context_params cp;
    snn_context_params_default(&cp);
    cp.device = device;
    snn_context *ctx;
    snn_status st = snn_context_create(&ctx, &cp);
    if (st) return fail("context", st);
    printf("device: %s (%s, driver %s); default sparse threshold %.2f\n", ctx->info.name, ctx->info.platform,
           ctx->info.driver_version, (double)ctx->sparse_density);
    printf("ms per op on %ld images (median of %d runs); diff: largest |sparse - dense| / largest |dense|\n", images,
           runs);
    printf("%-22s %8s  %9s %9s %7s  %9s %9s %7s  %8s\n", "shape C->Cout HxW", "density", "fwd dense", "sparse",
           "ratio", "dW dense", "sparse", "ratio", "diff");
    const struct {
        size_t C, Cout, H;
    } shapes[] = {{64, 128, 16}, {128, 256, 8}};
    const double densities[] = {0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 1.0}; /* --density: one of these */
    const size_t N = (size_t)images;
    for (size_t s = 0; s < SNN_ARRAY_LEN(shapes) && st == SNN_OK; s++) {
        const size_t C = shapes[s].C, Cout = shapes[s].Cout, H = shapes[s].H, W = H, HW = H * W;
        const size_t n_in = C * N * HW, n_w = Cout * C * 9, n_out = Cout * N * HW;
        float *x = malloc(n_in * sizeof *x), *w = malloc(n_w * sizeof *w), *g = malloc(n_out * sizeof *g);
        if (!x || !w || !g) return fail("host memory", SNN_ERR_OUT_OF_MEMORY);
        for (size_t i = 0; i < n_w; i++) w[i] = (float)(uniform() - 0.5);
        for (size_t i = 0; i < n_out; i++) g[i] = (float)(uniform() - 0.5);
        cl_mem xin = NULL, wd = NULL, gd = NULL, out = NULL, dw = NULL;
        st = snn_buffer_create(ctx, n_in * sizeof(float), &xin);
        if (!st) st = snn_buffer_create(ctx, n_w * sizeof(float), &wd);
        if (!st) st = snn_buffer_create(ctx, n_out * sizeof(float), &gd);
        if (!st) st = snn_buffer_create(ctx, n_out * sizeof(float), &out);
        if (!st) st = snn_buffer_create(ctx, n_w * sizeof(float), &dw);
        if (!st) st = snn_buffer_write(ctx, wd, 0, n_w * sizeof(float), w);
        if (!st) st = snn_buffer_write(ctx, gd, 0, n_out * sizeof(float), g);
        snn_workspace ws = {.limit = (size_t)64 << 20}, ws2 = {.limit = (size_t)64 << 20};
        for (size_t d = 0; d < SNN_ARRAY_LEN(densities) && st == SNN_OK; d++) {
            if (only_density >= 0 && densities[d] != only_density) continue;
            for (size_t i = 0; i < n_in; i++)
                x[i] = uniform() < densities[d] ? (float)(1 + (int)(uniform() * 4)) / 4.0f : 0.0f;
            st = snn_buffer_write(ctx, xin, 0, n_in * sizeof(float), x);
            timing fd = {0}, fs = {0}, wdn = {0}, wsp = {0};
            if (!st) st = time_op(ctx, 0, 0.0f, runs, xin, C, N, H, W, wd, Cout, gd, out, n_out, &ws, &ws2, &fd);
            if (!st) st = time_op(ctx, 0, 1.0f, runs, xin, C, N, H, W, wd, Cout, gd, out, n_out, &ws, &ws2, &fs);
            if (!st) st = time_op(ctx, 1, 0.0f, runs, xin, C, N, H, W, wd, Cout, gd, dw, n_w, &ws, &ws2, &wdn);
            if (!st) st = time_op(ctx, 1, 1.0f, runs, xin, C, N, H, W, wd, Cout, gd, dw, n_w, &ws, &ws2, &wsp);
            if (!st) {
                char shape[32];
                snprintf(shape, sizeof shape, "%zu->%zu %zux%zu", C, Cout, H, W);
                const double diff = fmax(rel_diff(fs.result, fd.result, n_out), rel_diff(wsp.result, wdn.result, n_w));
                printf("%-22s %8.3f  %9.1f %9.1f %6.2fx  %9.1f %9.1f %6.2fx  %8.1e\n", shape, densities[d], fd.ms,
                       fs.ms, fd.ms / fs.ms, wdn.ms, wsp.ms, wdn.ms / wsp.ms, diff);
                fflush(stdout);
            }
            free(fd.result);
            free(fs.result);
            free(wdn.result);
            free(wsp.result);
        }
        snn_workspace_release(&ws);
        snn_workspace_release(&ws2);
        cl_mem *bufs[] = {&xin, &wd, &gd, &out, &dw};
        for (size_t i = 0; i < SNN_ARRAY_LEN(bufs); i++)
            if (*bufs[i]) snn_buffer_release(bufs[i]);
        free(x);
        free(w);
        free(g);
    }
    snn_context_free(ctx);
    return st ? fail("run", st) : 0;
}
