/* snn_mpi_step on 2 ranks (tests/meson.build runs it under mpirun -np 2): each rank
 * trains on its half of a global batch; the update equals the one a single process
 * makes from the two halves' gradients averaged, bit for bit, on both ranks. A rank
 * with a bad batch makes both ranks fail, naming it, with no update anywhere. With
 * synchronized BatchNorm, 2 ranks equal one process on the whole batch.
 * Not Check: its fork mode and MPI do not mix; failures print and exit 1. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snncl_mpi.h"

#define FAIL(...)                                                \
    do {                                                         \
        fprintf(stderr, "rank %d: ", rank);                      \
        fprintf(stderr, __VA_ARGS__);                            \
        fprintf(stderr, " (%s)\n", snn_last_error());            \
        MPI_Abort(MPI_COMM_WORLD, 1);                            \
    } while (0)
#define OK(call)                                                 \
    do {                                                         \
        if ((call) != SNN_OK) FAIL("%s failed", #call);          \
    } while (0)

enum { HALF = 4, IN = 64, K = 5 };

static int rank;

/* The model, the same on every rank; `direct`: direct encoding and no dropout, so that
 * the batch's seed does not matter and shares of a batch see what the whole sees. */
static snn_model *model_of(snn_context *ctx, int direct) {
    snn_model_config cfg;
    OK(snn_model_config_default(&cfg, "simple"));
    if (direct) {
        cfg.encoding = SNN_ENCODING_DIRECT;
        cfg.dropout = 0.0f;
    }
    cfg.in_channels = 1;
    cfg.height = cfg.width = 8;
    cfg.num_classes = K;
    cfg.num_blocks = 2;
    cfg.channels[0] = 4;
    cfg.channels[1] = 8;
    cfg.T = 3;
    snn_model *m = NULL;
    OK(snn_model_create(&m, ctx, &cfg, 7));
    return m;
}
static snn_model *model(snn_context *ctx) { return model_of(ctx, 0); }

/* ||a - b|| / ||b|| over all trainable gradients of two trainers. */
static double grad_distance(snn_trainer *a, snn_trainer *b) {
    double num = 0, den = 0;
    for (int i = 0; i < snn_trainer_num_grads(b); i++) {
        size_t n = 0;
        OK(snn_trainer_grad_info(b, i, NULL, NULL, NULL, &n));
        float *ga = malloc(n * sizeof(float)), *gb = malloc(n * sizeof(float));
        if (!ga || !gb) FAIL("out of memory");
        OK(snn_trainer_read_grad(a, i, ga));
        OK(snn_trainer_read_grad(b, i, gb));
        for (size_t k = 0; k < n; k++) {
            num += ((double)ga[k] - gb[k]) * ((double)ga[k] - gb[k]);
            den += (double)gb[k] * gb[k];
        }
        free(ga);
        free(gb);
    }
    return sqrt(num / den);
}

/* The largest difference between two models' tensors, relative to the larger one's
 * largest magnitude, the running estimates included. */
static double model_distance(snn_model *a, snn_model *b) {
    snn_safetensors *sa = NULL, *sb = NULL;
    OK(snn_model_to_safetensors(a, &sa));
    OK(snn_model_to_safetensors(b, &sb));
    double worst = 0;
    for (size_t i = 0; i < snn_safetensors_count(sa); i++) {
        const snn_tensor *ta = snn_safetensors_at(sa, i), *tb = snn_safetensors_find(sb, ta->name);
        if (!tb || ta->nbytes != tb->nbytes) FAIL("%s is missing or differs in size", ta->name);
        if (ta->dtype != SNN_F32) continue;
        const float *x = ta->data, *y = tb->data;
        double diff = 0, scale = 0;
        for (size_t k = 0; k < ta->nbytes / sizeof(float); k++) {
            diff = fmax(diff, fabs((double)x[k] - y[k]));
            scale = fmax(scale, fabs((double)y[k]));
        }
        worst = fmax(worst, diff / fmax(scale, 1e-30));
        if (getenv("TEST_MPI_VERBOSE")) fprintf(stderr, "rank %d: %s %.3g\n", rank, ta->name, diff / fmax(scale, 1e-30));
    }
    snn_safetensors_free(sa);
    snn_safetensors_free(sb);
    return worst;
}

/* Synchronized statistics: 2 ranks on halves of the batch, then rank 0 alone with all
 * of it (rank 1's share empty), against one process with the whole batch: gradients,
 * parameters and running estimates equal up to rounding. `recipe`: 0, direct encoding
 * and nothing random; 1, rate encoding and dropout (each share numbered by .first in
 * the global batch, so it draws what its samples draw in the whole); 2, and the
 * regularizer too. And a failure on one rank inside the synchronized step fails both. */
static void check_sync_batchnorm(snn_context *ctx, const float *x, const int64_t *labels, int recipe) {
    /* The regularizer's gradient is a difference of two backward passes ~1/eps larger:
     * float rounding shows in it at ~1e-4 (measured 1.6e-4 to 5.7e-4). */
    const double tol = recipe == 2 ? 2e-3 : 2e-5, model_tol = recipe == 2 ? 1e-2 : 1e-4;
    snn_model *dist = model_of(ctx, recipe == 0), *ref = model_of(ctx, recipe == 0);
    snn_train_config tc;
    snn_train_config_default(&tc);
    tc.schedule = SNN_SCHEDULE_CONSTANT;
    tc.optimizer = SNN_OPTIM_SGD; /* Adam would blow rounding up where a gradient is ~0 */
    tc.lr = 0.05f;
    if (recipe < 2) tc.lyap_weight = 0.0f;
    tc.sync_batchnorm = 1;
    snn_trainer *td = NULL, *tref = NULL;
    OK(snn_trainer_create(&td, dist, &tc));
    OK(snn_trainer_create(&tref, ref, &tc));
    const snn_batch whole = {.input = x, .labels = labels, .size = 2 * HALF, .seed = 1};
    const snn_batch half = {.input = x + rank * HALF * IN, .labels = labels + rank * HALF, .size = HALF, .seed = 1,
                            .first = rank * HALF};
    const snn_batch none = {.size = 0};
    for (int step = 0; step < 4; step++) {
        /* steps 0 and 1: halves; 2 and 3: rank 0 has the whole batch, rank 1 nothing */
        const snn_batch *mine = step < 2 ? &half : rank == 0 ? &whole : &none;
        snn_step_stats got, want;
        OK(snn_mpi_step(td, MPI_COMM_WORLD, mine, &got));
        OK(snn_trainer_gradients(tref, &whole, &want));
        const double g = grad_distance(td, tref);
        OK(snn_trainer_apply(tref));
        const double m = model_distance(dist, ref);
        if (g > tol || m > model_tol || got.correct != want.correct ||
            fabs((double)got.cross_entropy - want.cross_entropy) > 1e-5 ||
            fabs((double)got.lyapunov - want.lyapunov) > 1e-5)
            FAIL("synchronized statistics (case %d), step %d: gradients %.3g, model %.3g apart (tolerance %.0e, "
                 "%.0e); correct %d vs %d, cross-entropy %.9g vs %.9g, estimate %.9g vs %.9g", recipe, step, g, m,
                 tol, model_tol, got.correct, want.correct, (double)got.cross_entropy, (double)want.cross_entropy,
                 (double)got.lyapunov, (double)want.lyapunov);
        if (rank == 0)
            printf("test_mpi: synchronized statistics, %s, step %d: gradients %.2e, model %.2e from one process\n",
                   recipe == 0 ? "direct encoding" : recipe == 1 ? "rate encoding, dropout" : "and the regularizer",
                   step, g, m);
    }
    /* rank 1 fails before its first sum, rank 0 is inside its step: both fail, naming rank 1 */
    const int64_t steps = snn_trainer_steps_done(td);
    int64_t bad_labels[HALF] = {0, K + 3, 1, 2};
    snn_batch bad = half;
    if (rank == 1) bad.labels = bad_labels;
    if (snn_mpi_step(td, MPI_COMM_WORLD, &bad, NULL) != SNN_ERR_INVALID_ARG)
        FAIL("a bad batch on rank 1 passed a synchronized step");
    if (!strstr(snn_last_error(), "rank 1: ") || !strstr(snn_last_error(), "labels"))
        FAIL("the synchronized failure does not name rank 1 and its labels: %s", snn_last_error());
    if (snn_trainer_steps_done(td) != steps) FAIL("an update was applied");
    OK(snn_mpi_step(td, MPI_COMM_WORLD, &half, NULL)); /* and on it goes */
    snn_trainer_free(td);
    snn_trainer_free(tref);
    snn_model_free(dist);
    snn_model_free(ref);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 2) {
        if (rank == 0) fprintf(stderr, "test_mpi: run it on 2 ranks (mpirun -np 2), not %d\n", size);
        MPI_Finalize();
        return 1;
    }
    snn_context *ctx = NULL;
    OK(snn_context_create(&ctx, NULL));
    snn_model *dist = model(ctx), *ref = model(ctx);
    snn_train_config tc;
    snn_train_config_default(&tc);
    tc.schedule = SNN_SCHEDULE_CONSTANT;
    tc.grad_clip = 0.5f;
    snn_trainer *td = NULL, *tref = NULL;
    OK(snn_trainer_create(&td, dist, &tc));
    OK(snn_trainer_create(&tref, ref, &tc));

    /* the global batch, the same on both ranks; rank r trains on half r */
    float x[2 * HALF * IN];
    int64_t labels[2 * HALF];
    unsigned s = 12345;
    for (size_t i = 0; i < 2 * HALF * IN; i++) x[i] = (float)((s = s * 1103515245u + 12345u) >> 8) / 16777216.0f;
    for (int i = 0; i < 2 * HALF; i++) labels[i] = (i * 3) % K;
    snn_batch half[2];
    for (int h = 0; h < 2; h++)
        half[h] = (snn_batch){.input = x + h * HALF * IN, .labels = labels + h * HALF, .size = HALF, .seed = 40 + h};

    for (int step = 0; step < 3; step++) {
        snn_step_stats got;
        OK(snn_mpi_step(td, MPI_COMM_WORLD, &half[rank], &got));
        /* the single-process reference: both halves' gradients, weighted and averaged
         * in the order the reduction sums them (rank 0's first) */
        const int n = snn_trainer_num_grads(tref);
        float *g[2] = {NULL, NULL};
        size_t total = 0, counts[64];
        if (n > 64) FAIL("%d trainable tensors", n);
        for (int i = 0; i < n; i++) {
            OK(snn_trainer_grad_info(tref, i, NULL, NULL, NULL, &counts[i]));
            total += counts[i];
        }
        snn_step_stats st[2];
        for (int h = 0; h < 2; h++) {
            g[h] = malloc(total * sizeof(float));
            if (!g[h]) FAIL("out of memory");
            OK(snn_trainer_gradients(tref, &half[h], &st[h]));
            for (int i = 0, at = 0; i < n; at += (int)counts[i], i++) OK(snn_trainer_read_grad(tref, i, g[h] + at));
        }
        for (size_t k = 0; k < total; k++) g[0][k] = (g[0][k] * (float)HALF + g[1][k] * (float)HALF) / (float)(2 * HALF);
        for (int i = 0, at = 0; i < n; at += (int)counts[i], i++) OK(snn_trainer_write_grad(tref, i, g[0] + at));
        OK(snn_trainer_apply(tref));
        free(g[0]);
        free(g[1]);

        /* the same parameters, bit for bit, through the models' files */
        snn_safetensors *a = NULL, *b = NULL;
        OK(snn_model_to_safetensors(dist, &a));
        OK(snn_model_to_safetensors(ref, &b));
        for (size_t i = 0; i < snn_safetensors_count(a); i++) {
            const snn_tensor *ta = snn_safetensors_at(a, i), *tb = snn_safetensors_find(b, ta->name);
            if (!tb || ta->nbytes != tb->nbytes) FAIL("%s is missing or differs in size", ta->name);
            /* BatchNorm's running estimates moved on the half of this rank only (and twice
             * in the reference): only the trained tensors are compared */
            if (strstr(ta->name, "running_") || strstr(ta->name, "num_batches")) continue;
            if (memcmp(ta->data, tb->data, ta->nbytes) != 0) FAIL("step %d: %s differs from the reference", step, ta->name);
        }
        snn_safetensors_free(a);
        snn_safetensors_free(b);
        const double ce = ((double)st[0].cross_entropy * HALF + (double)st[1].cross_entropy * HALF) / (2 * HALF);
        if (got.correct != st[0].correct + st[1].correct || (float)ce != got.cross_entropy)
            FAIL("step %d: figures %d %.9g, expected %d %.9g", step, got.correct, (double)got.cross_entropy,
                 st[0].correct + st[1].correct, ce);
    }

    /* rank 1 brings a bad batch: both fail, naming it; nothing is applied */
    const int64_t steps = snn_trainer_steps_done(td);
    int64_t bad_labels[HALF] = {0, K + 3, 1, 2};
    snn_batch bad = half[rank];
    if (rank == 1) bad.labels = bad_labels;
    snn_step_stats ignored;
    if (snn_mpi_step(td, MPI_COMM_WORLD, &bad, &ignored) != SNN_ERR_INVALID_ARG) FAIL("a bad batch on rank 1 passed");
    if (!strstr(snn_last_error(), "rank 1: ") || !strstr(snn_last_error(), "labels"))
        FAIL("the failure does not name rank 1 and its labels: %s", snn_last_error());
    if (snn_trainer_steps_done(td) != steps) FAIL("an update was applied");
    /* and NULL arguments, on every rank at once */
    if (snn_mpi_step(NULL, MPI_COMM_WORLD, &half[rank], NULL) != SNN_ERR_INVALID_ARG) FAIL("tr NULL passed");
    if (snn_mpi_step(td, MPI_COMM_WORLD, NULL, NULL) != SNN_ERR_INVALID_ARG) FAIL("batch NULL passed");
    if (snn_mpi_step(td, MPI_COMM_NULL, &half[rank], NULL) != SNN_ERR_INVALID_ARG) FAIL("MPI_COMM_NULL passed");
    /* still usable */
    OK(snn_mpi_step(td, MPI_COMM_WORLD, &half[rank], NULL));
    for (int recipe = 0; recipe < 3; recipe++) check_sync_batchnorm(ctx, x, labels, recipe);

    snn_trainer_free(td);
    snn_trainer_free(tref);
    snn_model_free(dist);
    snn_model_free(ref);
    snn_context_free(ctx);
    if (rank == 0)
        printf("test_mpi: 2 ranks, 3 steps equal to the single-process reference bit for bit; synchronized statistics "
               "equal to one process on the whole batch; failures agreed\n");
    MPI_Finalize();
    return 0;
}
