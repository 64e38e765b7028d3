/* snn_mpi_step on 2 ranks (tests/meson.build runs it under mpirun -np 2): each rank
 * trains on its half of a global batch; the update equals the one a single process
 * makes from the two halves' gradients averaged, bit for bit, on both ranks. A rank
 * with a bad batch makes both ranks fail, naming it, with no update anywhere.
 * Not Check: its fork mode and MPI do not mix; failures print and exit 1. */
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

static snn_model *model(snn_context *ctx) {
    snn_model_config cfg;
    OK(snn_model_config_default(&cfg, "simple"));
    cfg.in_channels = 1;
    cfg.height = cfg.width = 8;
    cfg.num_classes = K;
    cfg.num_blocks = 2;
    cfg.channels[0] = 4;
    cfg.channels[1] = 8;
    cfg.T = 3;
    snn_model *m = NULL;
    OK(snn_model_create(&m, ctx, &cfg, 7)); /* the same on every rank */
    return m;
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

    snn_trainer_free(td);
    snn_trainer_free(tref);
    snn_model_free(dist);
    snn_model_free(ref);
    snn_context_free(ctx);
    if (rank == 0) printf("test_mpi: 2 ranks, 3 steps equal to the single-process reference bit for bit; failures agreed\n");
    MPI_Finalize();
    return 0;
}
