/* Separate contexts in separate threads: two threads, each with its own context, model
 * and trainer, run forward passes with the Lyapunov estimate and training steps at the
 * same time, and each must get exactly what one thread alone gets. One model served
 * from four threads through sessions, likewise. tools/tsan.sh runs
 * this test under ThreadSanitizer, which also checks that the library's shared state
 * (fault-injection counters, error messages, logging) is free of data races. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "snncl_opencl.h"
#include "testutil.h"

enum { B = 4, STEPS = 3, ROUNDS = 2 };

typedef struct job {
    uint64_t seed;
    float logits[B * 5], lyap, loss[STEPS];
    snn_status status;
    char error[512];
} job;

static snn_model_config config(void) {
    snn_model_config cfg;
    snn_model_config_default(&cfg, "simple");
    cfg.in_channels = 2;
    cfg.height = cfg.width = 8;
    cfg.num_classes = 5;
    cfg.num_blocks = 2;
    cfg.channels[0] = 4;
    cfg.channels[1] = 8;
    cfg.T = 4;
    return cfg;
}

#define TRY(call)                                                              \
    do {                                                                       \
        if ((j->status = (call)) != SNN_OK) {                                  \
            snprintf(j->error, sizeof j->error, "%s: %s", #call, snn_last_error()); \
            goto done;                                                         \
        }                                                                      \
    } while (0)

/* One context's work: a forward pass with the estimate, then training steps. */
static void *work(void *arg) {
    job *j = arg;
    snn_context *ctx = NULL;
    snn_model *m = NULL;
    snn_trainer *tr = NULL;
    const snn_model_config cfg = config();
    float x[B * 2 * 64];
    int64_t labels[B];
    test_rng rng;
    test_rng_seed(&rng, j->seed);
    test_fill_uniform(&rng, x, sizeof x / sizeof x[0], 0.0f, 1.0f);
    for (int b = 0; b < B; b++) labels[b] = b % 5;
    TRY(snn_context_create(&ctx, NULL));
    TRY(snn_model_create(&m, ctx, &cfg, j->seed));
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.lyapunov = 1;
    fp.seed = j->seed;
    TRY(snn_model_forward(m, x, B, &fp, j->logits, &j->lyap, NULL));
    snn_train_config tc;
    snn_train_config_default(&tc);
    tc.schedule = SNN_SCHEDULE_CONSTANT;
    TRY(snn_trainer_create(&tr, m, &tc));
    for (int k = 0; k < STEPS; k++) {
        const snn_batch batch = {.input = x, .labels = labels, .size = B, .seed = j->seed + (uint64_t)k};
        snn_step_stats s;
        TRY(snn_trainer_step(tr, &batch, &s));
        j->loss[k] = s.loss;
    }
done:
    snn_trainer_free(tr);
    snn_model_free(m);
    snn_context_free(ctx);
    return NULL;
}

START_TEST(two_contexts_two_threads) {
    job alone[2] = {{.seed = 11}, {.seed = 12}};
    for (int i = 0; i < 2; i++) {
        work(&alone[i]);
        ck_assert_msg(alone[i].status == SNN_OK, "%s", alone[i].error);
    }
    for (int round = 0; round < ROUNDS; round++) {
        job together[2] = {{.seed = 11}, {.seed = 12}};
        pthread_t t[2];
        for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&t[i], NULL, work, &together[i]), 0);
        for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        for (int i = 0; i < 2; i++) {
            ck_assert_msg(together[i].status == SNN_OK, "thread %d: %s", i, together[i].error);
            ck_assert_msg(memcmp(together[i].logits, alone[i].logits, sizeof alone[i].logits) == 0,
                          "thread %d: logits differ from one thread alone", i);
            ck_assert_msg(together[i].lyap == alone[i].lyap, "thread %d: estimate %.9g alone %.9g", i,
                          together[i].lyap, alone[i].lyap);
            ck_assert_msg(memcmp(together[i].loss, alone[i].loss, sizeof alone[i].loss) == 0,
                          "thread %d: training losses differ from one thread alone", i);
        }
    }
    ck_assert(alone[0].logits[0] != alone[1].logits[0]); /* the two jobs really differ */
}
END_TEST

/* One model, four threads, each with its own session: every thread runs several
 * batches (with the estimate, on host arrays, or on device buffers through
 * snn_session_forward_cl) and must get exactly what snn_model_forward gives for that
 * batch alone. */
enum { THREADS = 4, BATCHES = 3, IN = 2 * 64, K = 5 };

typedef struct reader {
    snn_model *model;
    int index;
    const float *x;            /* BATCHES batches of B samples */
    float logits[BATCHES][B * K], lyap[BATCHES][B];
    snn_status status;
    char error[512];
} reader;

static void *read_model(void *arg) {
    reader *r = arg;
    snn_session *s = NULL;
    cl_mem in = NULL, out = NULL, lam = NULL;
    if ((r->status = snn_session_create(&s, r->model)) != SNN_OK) goto fail;
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.lyapunov = 1;
    fp.seed = 5;
    for (int k = 0; k < BATCHES; k++) {
        const float *x = r->x + (size_t)k * B * IN;
        if (r->index % 2 == 0) {
            if ((r->status = snn_session_forward(s, x, B, &fp, r->logits[k], NULL, r->lyap[k])) != SNN_OK) goto fail;
            continue;
        }
        /* odd threads: through device buffers of their own */
        cl_context c;
        cl_command_queue q;
        cl_int err;
        snn_context_get_cl(snn_model_context(r->model), &c, NULL, &q);
        if (!in) in = clCreateBuffer(c, CL_MEM_READ_WRITE, B * IN * sizeof(float), NULL, &err);
        if (!out) out = clCreateBuffer(c, CL_MEM_READ_WRITE, B * K * sizeof(float), NULL, &err);
        if (!lam) lam = clCreateBuffer(c, CL_MEM_READ_WRITE, B * sizeof(float), NULL, &err);
        cl_event done = NULL;
        if (!in || !out || !lam ||
            clEnqueueWriteBuffer(q, in, CL_TRUE, 0, B * IN * sizeof(float), x, 0, NULL, NULL) != CL_SUCCESS) {
            r->status = SNN_ERR_OPENCL;
            snprintf(r->error, sizeof r->error, "the test's own buffers");
            goto done;
        }
        if ((r->status = snn_session_forward_cl(s, in, 0, B, &fp, out, 0, lam, 0, 0, NULL, &done)) != SNN_OK)
            goto fail;
        err = clEnqueueReadBuffer(q, out, CL_TRUE, 0, sizeof r->logits[k], r->logits[k], 1, &done, NULL);
        if (err == CL_SUCCESS) err = clEnqueueReadBuffer(q, lam, CL_TRUE, 0, sizeof r->lyap[k], r->lyap[k], 0, NULL, NULL);
        clReleaseEvent(done);
        if (err != CL_SUCCESS) {
            r->status = SNN_ERR_OPENCL;
            snprintf(r->error, sizeof r->error, "reading the results: %d", (int)err);
            goto done;
        }
    }
    goto done;
fail:
    snprintf(r->error, sizeof r->error, "%s", snn_last_error());
done:
    if (in) clReleaseMemObject(in);
    if (out) clReleaseMemObject(out);
    if (lam) clReleaseMemObject(lam);
    snn_session_free(s);
    return NULL;
}

START_TEST(one_model_four_threads) {
    snn_context *ctx = NULL;
    ck_assert_snn_ok(snn_context_create(&ctx, NULL));
    const snn_model_config cfg = config();
    snn_model *m = NULL;
    ck_assert_snn_ok(snn_model_create(&m, ctx, &cfg, 3));
    static float x[THREADS][BATCHES * B * IN];
    test_rng rng;
    test_rng_seed(&rng, 99);
    test_fill_uniform(&rng, &x[0][0], sizeof x / sizeof x[0][0], 0.0f, 1.0f);
    /* what one thread alone gets, batch by batch */
    static float want[THREADS][BATCHES][B * K], want_lyap[THREADS][BATCHES][B];
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.lyapunov = 1;
    fp.seed = 5;
    for (int t = 0; t < THREADS; t++)
        for (int k = 0; k < BATCHES; k++)
            ck_assert_snn_ok(snn_model_forward(m, x[t] + (size_t)k * B * IN, B, &fp, want[t][k], NULL, want_lyap[t][k]));
    static reader r[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        memset(&r[t], 0, sizeof r[t]);
        r[t].model = m;
        r[t].index = t;
        r[t].x = x[t];
        ck_assert_int_eq(pthread_create(&th[t], NULL, read_model, &r[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) ck_assert_int_eq(pthread_join(th[t], NULL), 0);
    for (int t = 0; t < THREADS; t++) {
        ck_assert_msg(r[t].status == SNN_OK, "thread %d: %s", t, r[t].error);
        for (int k = 0; k < BATCHES; k++) {
            ck_assert_msg(memcmp(r[t].logits[k], want[t][k], sizeof want[t][k]) == 0,
                          "thread %d batch %d: logits differ from one thread alone", t, k);
            ck_assert_msg(memcmp(r[t].lyap[k], want_lyap[t][k], sizeof want_lyap[t][k]) == 0,
                          "thread %d batch %d: estimates differ from one thread alone", t, k);
        }
    }
    snn_model_free(m);
    snn_context_free(ctx);
}
END_TEST

int main(void) {
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, two_contexts_two_threads);
    tcase_add_test(tc, one_model_four_threads);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
