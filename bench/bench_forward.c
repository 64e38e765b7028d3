/* Throughput of a fresh model: forward with and without the Lyapunov estimate, and
 * training steps (forward + backward + Adam) with and without the regularizer.
 *   bench_forward [--model simple|vgg] [--batch 32] [--T 25] [--encoding rate]
 *                 [--size 32] [--channels-in 3] [--runs 5] [--device D]
 *                 [--modes forward,forward-lyapunov,train,train-lyapunov]
 * Prints one line per mode: median, min and max milliseconds per batch over the
 * timed runs (after one warm-up run), images per second at the median, and the most
 * device memory snncl held during the mode. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snncl.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int fail(const char *what, snn_status st) {
    fprintf(stderr, "bench_forward: %s: %s: %s\n", what, snn_status_str(st), snn_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const char *kind = "simple", *device = NULL, *encoding = "rate";
    const char *modes = "forward,forward-lyapunov,train,train-lyapunov";
    int batch = 32, T = 25, size = 32, cin = 3, runs = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) kind = argv[i + 1];
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--T")) T = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--channels-in")) cin = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs")) runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--encoding")) encoding = argv[i + 1];
        else if (!strcmp(argv[i], "--device")) device = argv[i + 1];
        else if (!strcmp(argv[i], "--modes")) modes = argv[i + 1];
        else {
            fprintf(stderr, "bench_forward: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (batch < 1 || T < 1 || size < 8 || cin < 1 || runs < 1) {
        fprintf(stderr, "bench_forward: bad sizes\n");
        return 2;
    }
    snn_context_params cp;
    snn_context_params_default(&cp);
    cp.device = device;
    snn_context *ctx;
    snn_status st = snn_context_create(&ctx, &cp);
    if (st) return fail("context", st);
    snn_device_info info;
    snn_context_device_info(ctx, &info);
    snn_model_config cfg;
    if ((st = snn_model_config_default(&cfg, kind))) return fail("config", st);
    cfg.T = T;
    cfg.height = cfg.width = size;
    cfg.in_channels = cin;
    if ((st = snn_encoding_parse(encoding, &cfg.encoding))) return fail("encoding", st);
    snn_model *model;
    if ((st = snn_model_create(&model, ctx, &cfg, 1))) return fail("model", st);

    size_t n = (size_t)batch * (size_t)cin * (size_t)size * (size_t)size;
    float *x = malloc(n * sizeof(float)), *logits = malloc((size_t)batch * 10 * sizeof(float));
    double *ms = malloc((size_t)runs * sizeof(double));
    srand(1);
    for (size_t i = 0; i < n; i++) x[i] = (float)rand() / (float)RAND_MAX;

    printf("device: %s (%s, driver %s)\n", info.name, info.platform, info.driver_version);
    printf("workload: %s, B=%d, T=%d, %s, %dx%dx%d, %d timed runs\n", kind, batch, T, encoding, size, size, cin, runs);
    static const char *const mode_names[] = {"forward", "forward-lyapunov", "train", "train-lyapunov"};
    int64_t *labels = malloc((size_t)batch * sizeof(int64_t));
    for (int b = 0; b < batch; b++) labels[b] = b % 10;
    for (int mode = 0; mode < 4; mode++) {
        const char *hit = strstr(modes, mode_names[mode]);
        size_t len = strlen(mode_names[mode]);
        while (hit && ((hit > modes && hit[-1] != ',') || (hit[len] && hit[len] != ','))) hit = strstr(hit + 1, mode_names[mode]);
        if (!hit) continue;
        const int lyap = mode == 1 || mode == 3, train = mode >= 2;
        snn_context_reset_peak(ctx);
        snn_trainer *tr = NULL;
        if (train) {
            snn_train_config tc;
            snn_train_config_default(&tc);
            tc.schedule = SNN_SCHEDULE_CONSTANT;
            tc.lr = 1e-4f;
            tc.lyap_weight = lyap ? 0.1f : 0.0f;
            if ((st = snn_trainer_create(&tr, model, &tc))) return fail("trainer", st);
        }
        snn_forward_params fp;
        snn_forward_params_default(&fp);
        fp.lyapunov = lyap;
        float lyap_value;
        for (int r = -1; r < runs; r++) {
            fp.seed = (uint64_t)(r + 2);
            double t0 = now_ms();
            if (train) {
                snn_batch b = {.input = x, .labels = labels, .size = batch, .seed = (uint64_t)(r + 2)};
                if ((st = snn_trainer_step(tr, &b, NULL))) return fail("training step", st);
            } else if ((st = snn_model_forward(model, x, batch, &fp, logits, &lyap_value, NULL))) {
                return fail("forward", st);
            }
            if (r >= 0) ms[r] = now_ms() - t0;
        }
        snn_trainer_free(tr);
        size_t peak = 0;
        snn_context_memory(ctx, NULL, &peak);
        qsort(ms, (size_t)runs, sizeof(double), cmp_double);
        double med = runs % 2 ? ms[runs / 2] : 0.5 * (ms[runs / 2 - 1] + ms[runs / 2]);
        printf("%-18s median %9.1f ms  min %9.1f  max %9.1f  %8.1f images/s  peak %7.1f MB\n", mode_names[mode],
               med, ms[0], ms[runs - 1], batch * 1000.0 / med, (double)peak / (1024.0 * 1024.0));
        fflush(stdout);
    }
    free(labels);
    free(x);
    free(logits);
    free(ms);
    snn_model_free(model);
    snn_context_free(ctx);
    return 0;
}
