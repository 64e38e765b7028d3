/* Test-set evaluation. */
#include "evaluate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "progress.h"

static uint64_t splitmix64(uint64_t *s) {
    uint64_t x = (*s += 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* x[0..n) += sigma * N(0, 1), Box-Muller on SplitMix64 seeded by (seed, image). */
static void add_noise(float *x, size_t n, float sigma, uint64_t seed, uint64_t image) {
    uint64_t s = seed ^ (image * 0xD1B54A32D192ED03ull);
    const double two_pi = 6.283185307179586;
    for (size_t i = 0; i < n; i += 2) {
        const double u1 = ((double)(splitmix64(&s) >> 11) + 1.0) * 0x1p-53; /* (0, 1] */
        const double u2 = (double)(splitmix64(&s) >> 11) * 0x1p-53;
        const double r = sqrt(-2.0 * log(u1));
        x[i] += (float)(sigma * r * cos(two_pi * u2));
        if (i + 1 < n) x[i + 1] += (float)(sigma * r * sin(two_pi * u2));
    }
}

snn_status cli_evaluate(snn_model *model, const snn_dataset *ds, int batch, uint64_t seed, int lyapunov,
                        float lyap_eps, float noise, int show_progress, volatile sig_atomic_t *stop,
                        const cli_parallel *par, cli_eval_result *out) {
    snn_model_config cfg;
    snn_status st = snn_model_get_config(model, &cfg);
    if (st != SNN_OK) return st;
    int C, H, W;
    if ((st = snn_dataset_shape(ds, &C, &H, &W)) != SNN_OK) return st;
    const size_t n = snn_dataset_size(ds), per = (size_t)C * (size_t)H * (size_t)W;
    const size_t K = (size_t)cfg.num_classes;
    uint32_t *idx = malloc((size_t)batch * sizeof *idx);
    float *x = malloc((size_t)batch * per * sizeof *x), *logits = malloc((size_t)batch * K * sizeof *logits);
    int64_t *labels = malloc((size_t)batch * sizeof *labels);
    if (!idx || !x || !logits || !labels) {
        st = SNN_ERR_OUT_OF_MEMORY;
        goto done;
    }
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.lyapunov = lyapunov;
    fp.lyap_eps = lyap_eps;
    cli_progress prog;
    cli_progress_start(&prog, "eval", n, show_progress);
    /* rank `part` of `parts` takes batches part, part + parts, ...; every rank goes
     * through the same number of rounds, so that they stop together */
    const size_t part = par ? (size_t)par->rank : 0, parts = par ? (size_t)par->ranks : 1;
    const size_t batches = (n + (size_t)batch - 1) / (size_t)batch, rounds = (batches + parts - 1) / parts;
    size_t correct = 0, seen = 0;
    double lyap_sum = 0;
    const double t0 = cli_now();
    out->interrupted = 0;
    for (size_t round = 0; round < rounds; round++) {
        if (cli_parallel_any(par, (stop && *stop) || st != SNN_OK)) {
            out->interrupted = st == SNN_OK;
            break;
        }
        const size_t first = (round * parts + part) * (size_t)batch;
        if (first >= n) continue;
        const size_t b = n - first < (size_t)batch ? n - first : (size_t)batch;
        for (size_t i = 0; i < b; i++) idx[i] = (uint32_t)(first + i);
        if ((st = snn_dataset_gather(ds, idx, b, x, labels)) != SNN_OK) continue;
        for (size_t i = 0; noise > 0.0f && i < b; i++) add_noise(x + i * per, per, noise, seed, first + i);
        fp.seed = seed + first; /* rate encoding differs per batch, reproducibly */
        float lyap = 0;
        if ((st = snn_model_forward(model, x, (int)b, &fp, logits, &lyap, NULL)) != SNN_OK) continue;
        for (size_t i = 0; i < b; i++) {
            size_t arg = 0;
            for (size_t k = 1; k < K; k++)
                if (logits[i * K + k] > logits[i * K + arg]) arg = k;
            correct += (int64_t)arg == labels[i];
        }
        seen += b;
        lyap_sum += (double)lyap * (double)b;
        char extra[64];
        snprintf(extra, sizeof extra, "acc %.4f", (double)correct / (double)seen);
        const size_t done_images = (round + 1) * parts * (size_t)batch;
        cli_progress_update(&prog, done_images < n ? done_images : n, extra);
    }
    cli_progress_end(&prog);
    /* the ranks' totals, and whether any failed (its own message stays its own) */
    double totals[3] = {(double)correct, lyap_sum, st != SNN_OK};
    cli_parallel_sum(par, totals, 3);
    if (st == SNN_OK && totals[2] > 0)
        st = snn_report_error(SNN_ERR_INVALID_ARG, "evaluation failed on another rank (its message says why)");
    if (st == SNN_OK) {
        out->images = n;
        out->correct = (size_t)totals[0];
        out->accuracy = n ? totals[0] / (double)n : 0.0;
        out->lyapunov = n ? totals[1] / (double)n : 0.0;
        out->seconds = cli_now() - t0;
    }
done:
    free(idx);
    free(x);
    free(logits);
    free(labels);
    return st;
}
