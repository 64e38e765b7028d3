/* Builds a fresh `simple` model and prints its logits and Lyapunov estimate on a
 * random batch: the smallest complete use of the API.
 *   cc lyapunov.c $(pkg-config --cflags --libs snncl) && ./a.out */
#include <snncl.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(call)                                                                          \
    do {                                                                                     \
        snn_status s_ = (call);                                                              \
        if (s_ != SNN_OK) {                                                                  \
            fprintf(stderr, "%s failed: %s: %s\n", #call, snn_status_str(s_), snn_last_error()); \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

int main(void) {
    snn_context *ctx;
    CHECK(snn_context_create(&ctx, NULL)); /* $SNNCL_DEVICE or device 0 */

    snn_model_config cfg;
    CHECK(snn_model_config_default(&cfg, "simple"));
    cfg.channels[0] = 8, cfg.channels[1] = 16, cfg.num_blocks = 2;
    cfg.T = 10;
    snn_model *model;
    CHECK(snn_model_create(&model, ctx, &cfg, 42));

    enum { B = 4 };
    size_t n = (size_t)B * cfg.in_channels * cfg.height * cfg.width;
    float *images = malloc(n * sizeof *images), logits[B * 10], lambda, per_sample[B];
    for (size_t i = 0; i < n; i++) images[i] = (float)rand() / (float)RAND_MAX;

    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.lyapunov = 1;
    fp.seed = 7;
    CHECK(snn_model_forward(model, images, B, &fp, logits, &lambda, per_sample));
    for (int b = 0; b < B; b++)
        printf("sample %d: logit[0] %+.4f, lambda %+.4f\n", b, (double)logits[b * 10], (double)per_sample[b]);
    printf("batch mean lambda: %+.4f\n", (double)lambda);

    free(images);
    snn_model_free(model);
    snn_context_free(ctx);
    return 0;
}
