/* Builds a spiking network with C calls (no JSON), checks its shapes, makes a model of
 * it, runs it on random images with the Lyapunov estimate, and prints its description
 * as JSON: the same network as examples/fashion_net.json.
 *
 *   cc custom_network.c $(pkg-config --cflags --libs snncl) -lm -o custom_network
 *   ./custom_network [OUT.safetensors]
 *
 * With OUT, the fresh model is written there: `snncl train --init OUT` trains it, and
 * tools/snnpy/network.py loads it in PyTorch. */
#include <snncl.h>
#include <stdio.h>
#include <stdlib.h>

static int check(snn_status s, const char *what) {
    if (s == SNN_OK) return 0;
    fprintf(stderr, "custom_network: %s: %s: %s\n", what, snn_status_str(s), snn_last_error());
    return 1;
}

/* Fashion-MNIST's 1x28x28 images, 10 classes, 4 steps of direct encoding: a 5x5 and a
 * 3x3 convolutional block (the second resets to zero and trains through the atan
 * surrogate), then dropout and a linear readout of the spike counts. */
static snn_status build(snn_network **out) {
    snn_network *net;
    snn_status s = snn_network_create(&net, 1, 28, 28, 10, 4);
    if (s != SNN_OK) return s;
    const snn_network_part L = SNN_NET_LAYERS;
    snn_layer_desc second; /* options the one-call builders leave at their defaults */
    snn_layer_desc_default(&second, SNN_LAYER_LEAKY);
    second.beta = 0.85f;
    second.reset_mechanism = SNN_RESET_ZERO;
    second.surrogate = SNN_SURROGATE_ATAN;
    second.surrogate_param = 2.0f;
    if ((s = snn_network_set_encoding(net, SNN_ENCODING_DIRECT, 1.0f)) != SNN_OK ||
        (s = snn_network_conv2d(net, L, 32, 5, 1, 2, 0)) != SNN_OK ||
        (s = snn_network_batchnorm2d(net, L)) != SNN_OK ||
        (s = snn_network_leaky(net, L, 0.9f, 1.0f, SNN_SURROGATE_FAST_SIGMOID)) != SNN_OK ||
        (s = snn_network_pool2d(net, L, 0, 2)) != SNN_OK ||
        (s = snn_network_conv2d(net, L, 64, 3, 1, 1, 0)) != SNN_OK ||
        (s = snn_network_batchnorm2d(net, L)) != SNN_OK || (s = snn_network_add(net, L, &second)) != SNN_OK ||
        (s = snn_network_pool2d(net, L, 0, 2)) != SNN_OK || (s = snn_network_flatten(net, L)) != SNN_OK ||
        (s = snn_network_dropout(net, SNN_NET_READOUT, 0.2f)) != SNN_OK ||
        (s = snn_network_linear(net, SNN_NET_READOUT, 10)) != SNN_OK || (s = snn_network_check(net)) != SNN_OK) {
        snn_network_free(net);
        return s;
    }
    *out = net;
    return SNN_OK;
}

int main(int argc, char **argv) {
    int rc = 1;
    snn_network *net = NULL;
    snn_context *ctx = NULL;
    snn_model *model = NULL;
    float *x = NULL;
    char *json = NULL;
    if (check(build(&net), "building the network")) goto done;

    /* Each layer's output shape per sample and step, as shape inference found it. */
    for (int i = 0; i < snn_network_num_layers(net, SNN_NET_LAYERS); i++) {
        snn_layer_desc d;
        int ndim;
        int64_t s[3];
        if (check(snn_network_layer(net, SNN_NET_LAYERS, i, &d, &ndim, s), "reading a layer")) goto done;
        printf("layers[%2d] %-12s -> ", i, snn_layer_type_name(d.type));
        if (ndim == 3) printf("%lld x %lld x %lld\n", (long long)s[0], (long long)s[1], (long long)s[2]);
        else printf("%lld\n", (long long)s[0]);
    }

    if (check(snn_context_create(&ctx, NULL), "creating the context")) goto done;
    if (check(snn_model_create_network(&model, ctx, net, 7), "creating the model")) goto done;
    const int B = 4;
    x = malloc((size_t)B * 28 * 28 * sizeof(float));
    if (!x) goto done;
    srand(1);
    for (int i = 0; i < B * 28 * 28; i++) x[i] = (float)rand() / (float)RAND_MAX;
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.lyapunov = 1;
    float logits[4 * 10], lyap;
    if (check(snn_model_forward(model, x, B, &fp, logits, &lyap, NULL), "running the model")) goto done;
    printf("logits of sample 0:");
    for (int k = 0; k < 10; k++) printf(" %.3f", (double)logits[k]);
    printf("\nLyapunov estimate (batch mean): %.4f\n", (double)lyap);

    /* The description as JSON, every option written out (snncl describe prints the same). */
    size_t need = 0;
    snn_network_to_json(net, NULL, 0, &need);
    json = malloc(need);
    if (!json || check(snn_network_to_json(net, json, need, &need), "writing the JSON")) goto done;
    fputs(json, stdout);
    if (argc > 1 && check(snn_model_save(model, argv[1]), "saving the model")) goto done;
    rc = 0;
done:
    free(json);
    free(x);
    snn_model_free(model);
    snn_context_free(ctx);
    snn_network_free(net);
    return rc;
}
