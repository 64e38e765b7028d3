/* GEMM throughput of both snn_gemm implementations on the shapes of the convolutions
 * (channel-major, im2col) and linear layers of the simple model at 32x32.
 *   bench_gemm [--runs 7] [--warmup 2] [--cols 32768] [--impl both|clblast|native]
 *              [--only NAME] [--device D]
 * One line per shape: the median and best GFLOP/s over the timed runs (each run is one
 * snn_gemm and a clFinish, after the warm-up runs), and the largest difference between
 * the two implementations' results relative to the largest |C|. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "gemm.h"
#include "model.h"
#include "tune.h"

static int fail(const char *what, snn_status st) {
    fprintf(stderr, "bench_gemm: %s: %s: %s\n", what, snn_status_str(st), snn_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const char *device = NULL, *only = NULL, *impl_arg = "both";
    int runs = 7, warmup = 2;
    long cap = 32768;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--runs")) runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--cols")) cap = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--impl")) impl_arg = argv[i + 1];
        else if (!strcmp(argv[i], "--only")) only = argv[i + 1];
        else if (!strcmp(argv[i], "--device")) device = argv[i + 1];
        else {
            fprintf(stderr, "bench_gemm: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    snn_gemm_impl impls[2] = {SNN_GEMM_CLBLAST, SNN_GEMM_NATIVE};
    int first = 0, last = 1;
    if (!strcmp(impl_arg, "clblast")) last = 0;
    else if (!strcmp(impl_arg, "native")) first = 1;
    else if (strcmp(impl_arg, "both") != 0) {
        fprintf(stderr, "bench_gemm: --impl takes both, clblast or native\n");
        return 2;
    }
    if (runs < 1 || warmup < 0 || cap < 1024) {
        fprintf(stderr, "bench_gemm: bad --runs, --warmup or --cols\n");
        return 2;
    }

    snn_context_params cp;
    snn_context_params_default(&cp);
    cp.device = device;
    snn_context *ctx;
    snn_status st = snn_context_create(&ctx, &cp);
    if (st) return fail("context", st);
    printf("device: %s (%s, driver %s); default GEMM: %s\n", ctx->info.name, ctx->info.platform,
           ctx->info.driver_version, snn_gemm_impl_name(snn_gemm_default_impl(ctx)));
    printf("GFLOP/s = 2 M N K / time of one snn_gemm + clFinish; median (best) of %d runs after %d warm-up\n",
           runs, warmup);
    printf("%-15s %-5s %5s %6s %6s", "shape", "trans", "M", "N", "K");
    for (int i = first; i <= last; i++) printf("  %16s", snn_gemm_impl_name(impls[i]));
    printf("%s\n", first == 0 && last == 1 ? "  native/clblast  max diff" : "");

    snn_gemm_shape shapes[SNN_GEMM_MAX_SHAPES];
    snn_model_config workload; /* the default workload: simple, 32x32x3, B = 32 */
    size_t count = 0;
    st = snn_model_config_default(&workload, "simple");
    if (!st) st = snn_config_gemm_shapes(&workload, 32, (size_t)cap, shapes, SNN_GEMM_MAX_SHAPES, &count);
    if (st) return fail("workload", st);
    for (size_t si = 0; si < count; si++) {
        const snn_gemm_shape *s = &shapes[si];
        if (only && !strstr(s->name, only)) continue;
        const size_t na = s->m * s->k, nb = s->k * s->n, nc = s->m * s->n;
        float *h = malloc((na > nb ? (na > nc ? na : nc) : (nb > nc ? nb : nc)) * sizeof(float));
        float *res[2] = {malloc(nc * sizeof(float)), malloc(nc * sizeof(float))};
        cl_mem a = NULL, b = NULL, c = NULL;
        if (!h || !res[0] || !res[1]) return fail("host memory", SNN_ERR_OUT_OF_MEMORY);
        srand(1);
        for (size_t i = 0; i < na; i++) h[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        if ((st = snn_buffer_create(ctx, na * sizeof(float), &a)) ||
            (st = snn_buffer_write(ctx, a, 0, na * sizeof(float), h)))
            return fail("A", st);
        for (size_t i = 0; i < nb; i++) h[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        if ((st = snn_buffer_create(ctx, nb * sizeof(float), &b)) ||
            (st = snn_buffer_write(ctx, b, 0, nb * sizeof(float), h)))
            return fail("B", st);
        if ((st = snn_buffer_create(ctx, nc * sizeof(float), &c))) return fail("C", st);

        const double flop = 2.0 * (double)s->m * (double)s->n * (double)s->k;
        double gflops[2] = {0, 0};
        printf("%-15s (%d,%d) %5zu %6zu %6zu", s->name, s->ta, s->tb, s->m, s->n, s->k);
        fflush(stdout);
        for (int i = first; i <= last; i++) {
            double med = 0, best = 0;
            if ((st = snn_gemm_set_impl(ctx, impls[i]))) return fail("impl", st);
            if ((st = snn_gemm_time(ctx, s, a, b, c, warmup, runs, &med, &best))) return fail(s->name, st);
            gflops[i] = flop / med * 1e-9;
            printf("  %7.1f (%6.1f)", gflops[i], flop / best * 1e-9);
            fflush(stdout);
            /* one more run from zeros, for the comparison (beta 1 accumulates) */
            if ((st = snn_buffer_fill_zero(ctx, c, 0, nc * sizeof(float))) ||
                (st = snn_gemm_time(ctx, s, a, b, c, 0, 1, &med, &best)) ||
                (st = snn_buffer_read(ctx, c, 0, nc * sizeof(float), res[i])))
                return fail(s->name, st);
        }
        if (first == 0 && last == 1) {
            double diff = 0, mag = 0;
            for (size_t e = 0; e < nc; e++) {
                diff = fmax(diff, fabs((double)res[0][e] - (double)res[1][e]));
                mag = fmax(mag, fabs((double)res[0][e]));
            }
            printf("  %14.2fx  %8.1e", gflops[1] / gflops[0], mag > 0 ? diff / mag : diff);
        }
        printf("\n");
        snn_buffer_release(&a);
        snn_buffer_release(&b);
        snn_buffer_release(&c);
        free(h);
        free(res[0]);
        free(res[1]);
    }
    snn_context_free(ctx);
    return 0;
}
