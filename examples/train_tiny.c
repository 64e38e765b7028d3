/* Trains a tiny `simple` model on a synthetic labelled batch made in memory, prints the
 * loss of every step, checks that it went down, and saves the model.
 *
 *   cc train_tiny.c $(pkg-config --cflags --libs snncl) -o train_tiny
 *   ./train_tiny [OUT.safetensors]      (default: train_tiny.safetensors)
 *
 * The task: 1x8x8 images of noise with a brighter left half (class 0) or right half
 * (class 1). A real training loop takes its batches from snn_dataset_gather() in the
 * order of snn_dataset_order(); src/cli/cmd_train.c is the complete one. */
#include <snncl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(call)                                                                              \
    do {                                                                                         \
        snn_status s_ = (call);                                                                  \
        if (s_ != SNN_OK) {                                                                      \
            fprintf(stderr, "%s failed: %s: %s\n", #call, snn_status_str(s_), snn_last_error()); \
            exit(1);                                                                             \
        }                                                                                        \
    } while (0)

enum { B = 16, C = 1, H = 8, W = 8, CLASSES = 2, STEPS = 12 };

/* A small deterministic generator, so every run sees the same batch. */
static float uniform(uint32_t *state) {
    *state = *state * 1664525u + 1013904223u;
    return (float)(*state >> 8) / (float)(1u << 24);
}

int main(int argc, char **argv) {
    const char *out = argc > 1 ? argv[1] : "train_tiny.safetensors";

    snn_context *ctx;
    CHECK(snn_context_create(&ctx, NULL)); /* $SNNCL_DEVICE or device 0 */

    /* Start from the seed's defaults and shrink them: two blocks of 4 and 8 channels,
     * 4 time steps, the image itself at every step (direct encoding), no dropout. */
    snn_model_config cfg;
    CHECK(snn_model_config_default(&cfg, "simple"));
    cfg.in_channels = C, cfg.height = H, cfg.width = W, cfg.num_classes = CLASSES;
    cfg.num_blocks = 2, cfg.channels[0] = 4, cfg.channels[1] = 8;
    cfg.T = 4;
    cfg.encoding = SNN_ENCODING_DIRECT;
    cfg.dropout = 0.0f;
    snn_model *model;
    CHECK(snn_model_create(&model, ctx, &cfg, 1)); /* initial weights drawn from seed 1 */

    /* The batch: float (B, C, H, W) images and int64 labels in [0, CLASSES). */
    static float images[B * C * H * W];
    int64_t labels[B];
    uint32_t rng = 12345;
    for (int b = 0; b < B; b++) {
        labels[b] = b % CLASSES;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int bright = (x < W / 2) == (labels[b] == 0);
                images[(b * H + y) * W + x] = 0.5f * uniform(&rng) + (bright ? 0.5f : 0.0f);
            }
    }

    /* Adam with a constant learning rate (the default cosine schedule needs
     * total_steps), and the Lyapunov regularizer at its default weight 0.1, which runs
     * the perturbed trajectory beside the reference one in every step. */
    snn_train_config tc;
    snn_train_config_default(&tc);
    tc.lr = 1e-2f;
    tc.schedule = SNN_SCHEDULE_CONSTANT;
    snn_trainer *tr;
    CHECK(snn_trainer_create(&tr, model, &tc));

    float first = 0, last = 0;
    for (int step = 0; step < STEPS; step++) {
        /* The seed draws the rate encoding, the dropout mask and the initial
         * perturbation; with the same seeds a run repeats bit for bit. */
        snn_batch batch = {.input = images, .labels = labels, .size = B, .seed = (uint64_t)step};
        snn_step_stats s;
        CHECK(snn_trainer_step(tr, &batch, &s));
        printf("step %2d: loss %.4f (cross-entropy %.4f, lyapunov %+.4f), %2d/%d correct\n", step + 1,
               (double)s.loss, (double)s.cross_entropy, (double)s.lyapunov, s.correct, B);
        if (step == 0) first = s.loss;
        last = s.loss;
    }
    snn_trainer_free(tr);

    /* The trained model in eval mode (running BatchNorm statistics). */
    float logits[B * CLASSES];
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    CHECK(snn_model_forward(model, images, B, &fp, logits, NULL, NULL));
    int correct = 0;
    for (int b = 0; b < B; b++)
        correct += (logits[b * CLASSES + 1] > logits[b * CLASSES]) == (labels[b] == 1);
    printf("eval mode: %d/%d correct\n", correct, B);

    CHECK(snn_model_save(model, out)); /* atomic: a temporary file renamed into place */
    printf("saved %s\n", out);
    snn_model_free(model);
    snn_context_free(ctx);

    if (!(last < first)) {
        fprintf(stderr, "the loss did not decrease: %.4f -> %.4f\n", (double)first, (double)last);
        return 1;
    }
    printf("loss %.4f -> %.4f\n", (double)first, (double)last);
    return 0;
}
