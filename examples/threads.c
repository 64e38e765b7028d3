/* One model served from several threads: each thread opens its own snn_session (its
 * workspace on the device) and classifies its own batches, while the model is only
 * read. At the end every thread's logits are checked against snn_model_forward on the
 * same batch, from this one thread: they must be equal bit for bit.
 *   cc threads.c $(pkg-config --cflags --libs snncl) -pthread && ./a.out [threads] */
#include <pthread.h>
#include <snncl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                              \
    do {                                                                                         \
        snn_status s_ = (call);                                                                  \
        if (s_ != SNN_OK) {                                                                      \
            fprintf(stderr, "%s failed: %s: %s\n", #call, snn_status_str(s_), snn_last_error()); \
            exit(1);                                                                             \
        }                                                                                        \
    } while (0)

enum { MAX_THREADS = 16, BATCHES = 4, B = 8, K = 10 };

typedef struct worker {
    snn_model *model;
    const float *images; /* BATCHES batches of B images */
    size_t image_size;
    float logits[BATCHES][B * K];
    snn_status status;
    char error[256];
} worker;

static void *serve(void *arg) {
    worker *w = arg;
    snn_session *s = NULL;
    w->status = snn_session_create(&s, w->model);
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    for (int k = 0; k < BATCHES && w->status == SNN_OK; k++)
        w->status = snn_session_forward(s, w->images + (size_t)k * B * w->image_size, B, &fp, w->logits[k], NULL,
                                        NULL);
    if (w->status != SNN_OK) snprintf(w->error, sizeof w->error, "%s", snn_last_error()); /* this thread's */
    snn_session_free(s);
    return NULL;
}

int main(int argc, char **argv) {
    const int threads = argc > 1 ? atoi(argv[1]) : 4;
    if (threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "threads must be 1..%d\n", MAX_THREADS);
        return 2;
    }
    snn_context *ctx;
    CHECK(snn_context_create(&ctx, NULL));
    snn_model_config cfg;
    CHECK(snn_model_config_default(&cfg, "simple"));
    cfg.in_channels = 1, cfg.height = cfg.width = 28;
    cfg.channels[0] = 8, cfg.channels[1] = 16, cfg.num_blocks = 2;
    cfg.T = 6, cfg.encoding = SNN_ENCODING_DIRECT;
    snn_model *model;
    CHECK(snn_model_create(&model, ctx, &cfg, 42));

    const size_t image_size = (size_t)cfg.in_channels * cfg.height * cfg.width;
    const size_t per_thread = (size_t)BATCHES * B * image_size;
    float *images = malloc((size_t)threads * per_thread * sizeof *images);
    worker *w = calloc((size_t)threads, sizeof *w);
    if (!images || !w) return 1;
    srand(1);
    for (size_t i = 0; i < (size_t)threads * per_thread; i++) images[i] = (float)rand() / (float)RAND_MAX;

    pthread_t tid[MAX_THREADS];
    for (int t = 0; t < threads; t++) {
        w[t].model = model;
        w[t].images = images + (size_t)t * per_thread;
        w[t].image_size = image_size;
        if (pthread_create(&tid[t], NULL, serve, &w[t]) != 0) return 1;
    }
    for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);

    int same = 1;
    for (int t = 0; t < threads; t++) {
        if (w[t].status != SNN_OK) {
            fprintf(stderr, "thread %d: %s: %s\n", t, snn_status_str(w[t].status), w[t].error);
            return 1;
        }
        for (int k = 0; k < BATCHES; k++) {
            float want[B * K];
            CHECK(snn_model_forward(model, w[t].images + (size_t)k * B * image_size, B, NULL, want, NULL, NULL));
            same &= memcmp(want, w[t].logits[k], sizeof want) == 0;
        }
        printf("thread %d: %d batches of %d, first logit %+.4f\n", t, BATCHES, B, (double)w[t].logits[0][0]);
    }
    printf("every thread's logits equal snn_model_forward's bit for bit: %s\n", same ? "yes" : "NO");
    free(images);
    free(w);
    snn_model_free(model);
    snn_context_free(ctx);
    return same ? 0 : 1;
}
