/* Separate contexts in separate threads: two threads, each with its own context, model
 * and trainer, run forward passes with the Lyapunov estimate and training steps at the
 * same time, and each must get exactly what one thread alone gets. tools/tsan.sh runs
 * this test under ThreadSanitizer, which also checks that the library's shared state
 * (fault-injection counters, error messages, logging) is free of data races. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

int main(void) {
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, two_contexts_two_threads);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
