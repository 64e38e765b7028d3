/* Classifies a batch of images with a trained model: loads a model file and an input
 * file (both safetensors), runs the eval-mode forward pass and prints the predicted
 * class of every sample with its softmax probability.
 *
 *   cc classify.c $(pkg-config --cflags --libs snncl) -lm -o classify
 *   ./classify tests/fixtures/simple_direct_lyap.model.safetensors \
 *              tests/fixtures/simple_direct_lyap.input.safetensors
 *
 * (from the top of the source tree: a small `simple` model on 1x8x8 inputs and a batch
 * of three images). A model written by `snncl train` and an input written by any
 * safetensors writer work the same way: the input file holds one float tensor named
 * `input`, (B, C, H, W) images or (B, T, C, H, W) spikes already encoded. */
#include <math.h>
#include <snncl.h>
#include <stdio.h>
#include <stdlib.h>

/* Every snncl call returns a status; on failure snn_last_error() says what went wrong
 * (which file, which tensor, which shape). */
static int check(snn_status s, const char *what) {
    if (s == SNN_OK) return 0;
    fprintf(stderr, "classify: %s: %s: %s\n", what, snn_status_str(s), snn_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.safetensors INPUT.safetensors\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1], *input_path = argv[2];
    int rc = 1;
    snn_context *ctx = NULL;
    snn_model *model = NULL;
    snn_safetensors *in = NULL;
    float *input = NULL, *logits = NULL;

    /* NULL parameters: the device named by $SNNCL_DEVICE, else device 0. */
    if (check(snn_context_create(&ctx, NULL), "creating the context")) goto done;
    if (check(snn_model_load(&model, ctx, model_path), "loading the model")) goto done;
    snn_model_config cfg;
    if (check(snn_model_get_config(model, &cfg), "reading the model's configuration")) goto done;

    /* The input tensor's shape tells the batch size and whether it is pre-encoded. */
    if (check(snn_safetensors_read(&in, input_path), "reading the input")) goto done;
    const snn_tensor *t = snn_safetensors_find(in, "input");
    if (!t) {
        fprintf(stderr, "classify: %s has no tensor named 'input'\n", input_path);
        goto done;
    }
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    int spikes = t->ndim == 5; /* (B, T, C, H, W) */
    const int64_t *chw = t->shape + (spikes ? 2 : 1);
    /* A model with encoding none takes spikes only. */
    if ((t->ndim != 4 && !spikes) || (!spikes && cfg.encoding == SNN_ENCODING_NONE) ||
        (spikes && t->shape[1] != cfg.T) || chw[0] != cfg.in_channels ||
        chw[1] != cfg.height || chw[2] != cfg.width || t->shape[0] < 1 || t->shape[0] > 1 << 20) {
        fprintf(stderr, "classify: 'input' must be (B, %d, %d, %d) or (B, %d, %d, %d, %d) for this model\n",
                cfg.in_channels, cfg.height, cfg.width, cfg.T, cfg.in_channels, cfg.height, cfg.width);
        goto done;
    }
    fp.pre_encoded = spikes;
    int batch = (int)t->shape[0];
    size_t count = 1;
    for (int d = 0; d < t->ndim; d++) count *= (size_t)t->shape[d];

    /* The file may hold F32 or F64; get_f32 converts to the float32 the model takes,
     * checking the shape again (ndim, shape) against the one just validated. */
    input = malloc(count * sizeof *input);
    logits = malloc((size_t)batch * cfg.num_classes * sizeof *logits);
    if (!input || !logits) {
        fprintf(stderr, "classify: out of memory\n");
        goto done;
    }
    if (check(snn_safetensors_get_f32(in, "input", t->ndim, t->shape, input), "converting the input"))
        goto done;

    /* Eval mode: BatchNorm uses its running statistics, dropout is off. Without
     * fp.lyapunov the perturbed trajectory is not run. */
    if (check(snn_model_forward(model, input, batch, &fp, logits, NULL, NULL), "forward pass")) goto done;

    for (int b = 0; b < batch; b++) {
        const float *z = logits + (size_t)b * cfg.num_classes;
        int best = 0;
        for (int k = 1; k < cfg.num_classes; k++)
            if (z[k] > z[best]) best = k;
        double sum = 0;
        for (int k = 0; k < cfg.num_classes; k++) sum += exp((double)z[k] - z[best]);
        printf("sample %d: class %d (p = %.3f)\n", b, best, 1.0 / sum);
    }
    rc = 0;

done:
    /* Every *_free accepts NULL, so one exit path releases whatever was made. */
    free(logits);
    free(input);
    snn_safetensors_free(in);
    snn_model_free(model);
    snn_context_free(ctx);
    return rc;
}
