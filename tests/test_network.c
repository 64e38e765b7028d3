/* Network descriptions: the JSON form both ways, shape inference, every kind of bad
 * description as a clear error naming its place, the presets as descriptions (a
 * description equal to a preset gives the preset's numbers bit for bit), and models of
 * descriptions through files and training. Their arithmetic against snnTorch is
 * tests/test_network_parity.py's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "testutil.h"

/* The example description, with the seed's LIF where snncl's kernels need it. */
static const char *example_json =
    "{\n"
    "  \"input\": [1, 12, 12], \"num_classes\": 5, \"T\": 4, \"encoding\": \"direct\", \"encoding_gain\": 1.0,\n"
    "  \"layers\": [\n"
    "    {\"type\": \"conv2d\", \"out_channels\": 6, \"kernel_size\": 3, \"stride\": 1, \"padding\": 1, \"bias\": false},\n"
    "    {\"type\": \"batchnorm2d\"},\n"
    "    {\"type\": \"leaky\", \"beta\": 0.9, \"threshold\": 0.7, \"reset_mechanism\": \"subtract\",\n"
    "     \"surrogate\": {\"type\": \"fast_sigmoid\", \"slope\": 25}, \"learn_beta\": false},\n"
    "    {\"type\": \"avgpool2d\", \"kernel_size\": 2},\n"
    "    {\"type\": \"conv2d\", \"out_channels\": 8, \"kernel_size\": [3, 3], \"padding\": 1, \"bias\": false},\n"
    "    {\"type\": \"batchnorm2d\", \"momentum\": 0.2},\n"
    "    {\"type\": \"leaky\", \"beta\": 0.8, \"surrogate\": {\"type\": \"fast_sigmoid\"}},\n"
    "    {\"type\": \"flatten\"},\n"
    "    {\"type\": \"linear\", \"out_features\": 16},\n"
    "    {\"type\": \"leaky\", \"beta\": 0.95, \"threshold\": 0.5, \"surrogate\": {\"type\": \"fast_sigmoid\", \"slope\": 25}}\n"
    "  ],\n"
    "  \"readout\": [{\"type\": \"dropout\", \"p\": 0.25}, {\"type\": \"linear\", \"out_features\": 5}]\n"
    "}\n";

static char *to_json(const snn_network *net) {
    size_t need = 0;
    ck_assert_snn_status(snn_network_to_json(net, NULL, 0, &need), SNN_ERR_INVALID_ARG);
    char *text = malloc(need);
    ck_assert_ptr_nonnull(text);
    ck_assert_snn_ok(snn_network_to_json(net, text, need, &need));
    ck_assert_uint_eq(strlen(text) + 1, need);
    return text;
}

START_TEST(test_parse_shapes_and_round_trip) {
    snn_network *net;
    ck_assert_snn_ok(snn_network_parse(&net, example_json));
    ck_assert_int_eq(snn_network_num_layers(net, SNN_NET_LAYERS), 10);
    ck_assert_int_eq(snn_network_num_layers(net, SNN_NET_READOUT), 2);
    int ndim;
    int64_t shape[3];
    snn_layer_desc d;
    /* conv 6x12x12, pool 6x6x6, conv 8x6x6, flatten 288, linear 16 */
    const int64_t want[][4] = {{0, 3, 6, 12}, {3, 3, 6, 6}, {4, 3, 8, 6}, {7, 1, 288, 0}, {8, 1, 16, 0}};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        ck_assert_snn_ok(snn_network_layer(net, SNN_NET_LAYERS, (int)want[k][0], &d, &ndim, shape));
        ck_assert_int_eq(ndim, want[k][1]);
        ck_assert_int_eq(shape[0], want[k][2]);
        if (ndim == 3) ck_assert_int_eq(shape[1], want[k][3]);
    }
    ck_assert_snn_ok(snn_network_layer(net, SNN_NET_LAYERS, 5, &d, NULL, NULL));
    ck_assert_int_eq(d.type, SNN_LAYER_BATCHNORM2D);
    ck_assert_float_eq(d.momentum, 0.2f);
    ck_assert_float_eq(d.eps, 1e-5f);
    ck_assert_snn_ok(snn_network_layer(net, SNN_NET_LAYERS, 6, &d, NULL, NULL));
    ck_assert_float_eq(d.beta, 0.8f);
    ck_assert_float_eq(d.threshold, 1.0f);
    ck_assert_int_eq(d.surrogate, SNN_SURROGATE_FAST_SIGMOID);
    ck_assert_float_eq(d.surrogate_param, 25.0f);
    ck_assert_int_eq(d.reset_delay, 1);
    ck_assert_snn_ok(snn_network_layer(net, SNN_NET_READOUT, 0, &d, NULL, NULL));
    ck_assert_float_eq(d.p, 0.25f);
    int T;
    snn_encoding enc;
    ck_assert_snn_ok(snn_network_input(net, NULL, NULL, NULL, NULL, &T, &enc, NULL));
    ck_assert_int_eq(T, 4);
    ck_assert_int_eq(enc, SNN_ENCODING_DIRECT);

    /* Written out and read back: the same text. */
    char *text = to_json(net);
    snn_network *again;
    ck_assert_snn_ok(snn_network_parse(&again, text));
    char *text2 = to_json(again);
    ck_assert_str_eq(text, text2);
    ck_assert_ptr_nonnull(strstr(text, "\"reset_mechanism\": \"subtract\""));
    free(text);
    free(text2);
    snn_network_free(again);
    snn_network_free(net);
}
END_TEST

/* Defaults are PyTorch's and snnTorch's: conv2d padding 0, bias true; leaky's atan. */
START_TEST(test_defaults_are_pytorchs) {
    snn_network *net;
    ck_assert_snn_ok(snn_network_parse(&net, "{\"input\": [2, 9, 9], \"num_classes\": 3, \"layers\": ["
                                             "{\"type\": \"conv2d\", \"out_channels\": 4, \"kernel_size\": 3},"
                                             "{\"type\": \"leaky\", \"beta\": 0.5},"
                                             "{\"type\": \"maxpool2d\", \"kernel_size\": 2, \"stride\": null},"
                                             "{\"type\": \"flatten\"}, {\"type\": \"linear\", \"out_features\": 3},"
                                             "{\"type\": \"leaky\", \"beta\": 0.5}]}"));
    snn_layer_desc d;
    int ndim;
    int64_t shape[3];
    ck_assert_snn_ok(snn_network_layer(net, SNN_NET_LAYERS, 0, &d, &ndim, shape));
    ck_assert_int_eq(d.padding, 0);
    ck_assert_int_eq(d.bias, 1);
    ck_assert_int_eq(d.stride, 1);
    ck_assert_int_eq(shape[1], 7);
    ck_assert_snn_ok(snn_network_layer(net, SNN_NET_LAYERS, 1, &d, NULL, NULL));
    ck_assert_int_eq(d.surrogate, SNN_SURROGATE_ATAN);
    ck_assert_float_eq(d.surrogate_param, 2.0f);
    ck_assert_int_eq(d.reset_mechanism, SNN_RESET_SUBTRACT);
    ck_assert_snn_ok(snn_network_layer(net, SNN_NET_LAYERS, 2, &d, &ndim, shape));
    ck_assert_int_eq(shape[1], 3); /* floor((7 - 2) / 2) + 1 */
    int T;
    snn_encoding enc;
    float gain;
    ck_assert_snn_ok(snn_network_input(net, NULL, NULL, NULL, NULL, &T, &enc, &gain));
    ck_assert_int_eq(T, 25);
    ck_assert_int_eq(enc, SNN_ENCODING_RATE);
    ck_assert_float_eq(gain, 1.0f);
    ck_assert_int_eq(snn_network_num_layers(net, SNN_NET_READOUT), 0);
    snn_network_free(net);
}
END_TEST

/* Bad descriptions: each a clear error that names its place. */
typedef struct bad_case {
    const char *json;
    snn_status want;
    const char *mentions;
} bad_case;

#define HEAD "{\"input\": [1, 8, 8], \"num_classes\": 4, \"layers\": ["
#define CONV "{\"type\": \"conv2d\", \"out_channels\": 4, \"kernel_size\": 3, \"padding\": 1}"
#define LIF "{\"type\": \"leaky\", \"beta\": 0.9}"
#define TAIL "{\"type\": \"flatten\"}, {\"type\": \"linear\", \"out_features\": 4}]}"

static const bad_case bad_cases[] = {
    {HEAD "{\"type\": \"conv3d\", \"out_channels\": 4}]}", SNN_ERR_INVALID_ARG, "layers[0].type: unknown value 'conv3d'"},
    {HEAD CONV ", " LIF ", " LIF ", {\"type\": \"maxpool2d\", \"kernal_size\": 2}]}", SNN_ERR_INVALID_ARG,
     "layers[3].kernal_size: unknown key"},
    {HEAD "{\"type\": \"conv2d\", \"kernel_size\": 3}]}", SNN_ERR_INVALID_ARG, "layers[0]: missing key 'out_channels'"},
    {HEAD "{\"type\": \"leaky\"}]}", SNN_ERR_INVALID_ARG, "layers[0]: missing key 'beta'"},
    {HEAD "{\"beta\": 0.9}]}", SNN_ERR_INVALID_ARG, "layers[0]: missing key 'type'"},
    {HEAD "{\"type\": \"conv2d\", \"out_channels\": 4, \"kernel_size\": \"3\"}]}", SNN_ERR_INVALID_ARG,
     "layers[0].kernel_size: expected an integer, got a string"},
    {HEAD "{\"type\": \"conv2d\", \"out_channels\": 4.5, \"kernel_size\": 3}]}", SNN_ERR_INVALID_ARG,
     "layers[0].out_channels: expected an integer"},
    {HEAD "{\"type\": \"conv2d\", \"out_channels\": -4, \"kernel_size\": 3}]}", SNN_ERR_INVALID_ARG,
     "layers[0].out_channels: -4 is outside"},
    {HEAD "{\"type\": \"conv2d\", \"out_channels\": 1000000000, \"kernel_size\": 3}]}", SNN_ERR_INVALID_ARG,
     "layers[0].out_channels: 1000000000 is outside"},
    {HEAD "{\"type\": \"conv2d\", \"out_channels\": 4, \"kernel_size\": 3, \"bias\": 1}]}", SNN_ERR_INVALID_ARG,
     "layers[0].bias: expected true or false"},
    {HEAD "{\"type\": \"leaky\", \"beta\": 0.9, \"reset_mechanism\": \"half\"}]}", SNN_ERR_INVALID_ARG,
     "layers[0].reset_mechanism: unknown value 'half'"},
    {HEAD "{\"type\": \"leaky\", \"beta\": 0.9, \"surrogate\": {\"type\": \"atan\", \"slope\": 3}}]}",
     SNN_ERR_INVALID_ARG, "layers[0].surrogate.slope: unknown key"},
    {HEAD "{\"type\": \"dropout\", \"p\": 1.5}]}", SNN_ERR_INVALID_ARG, "layers[0].p: 1.5 is outside"},
    {HEAD "{\"type\": \"avgpool2d\", \"kernel_size\": [2, 3]}]}", SNN_ERR_INVALID_ARG, "square only"},
    /* shapes */
    {HEAD CONV ", {\"type\": \"maxpool2d\", \"kernel_size\": 3}, {\"type\": \"maxpool2d\", \"kernel_size\": 2},"
          "{\"type\": \"maxpool2d\", \"kernel_size\": 4}]}",
     SNN_ERR_SHAPE, "layers[3] maxpool2d: 1x1 input smaller than kernel 4"},
    {HEAD "{\"type\": \"conv2d\", \"out_channels\": 4, \"kernel_size\": 9}]}", SNN_ERR_SHAPE,
     "layers[0] conv2d: 8x8 input smaller than kernel 9"},
    {HEAD CONV ", {\"type\": \"linear\", \"out_features\": 4}]}", SNN_ERR_SHAPE, "add a flatten before it"},
    {HEAD CONV ", " LIF "]}", SNN_ERR_SHAPE, "not 4 class scores"},
    {HEAD CONV ", {\"type\": \"flatten\"}, {\"type\": \"linear\", \"out_features\": 5}]}", SNN_ERR_SHAPE,
     "end in 5 outputs, but num_classes is 4"},
    {HEAD "{\"type\": \"flatten\"}, {\"type\": \"batchnorm2d\"}]}", SNN_ERR_SHAPE, "layers[1] batchnorm2d: needs a C x H x W"},
    {HEAD "{\"type\": \"conv2d\", \"out_channels\": 65536, \"kernel_size\": 1, \"padding\": 255}]}", SNN_ERR_SHAPE,
     "more than"},
    /* the document */
    {"{\"input\": [1, 8], \"num_classes\": 4, \"layers\": []}", SNN_ERR_INVALID_ARG, "input: expected [channels"},
    {"{\"input\": [1, 8, 8], \"num_classes\": 4, \"layers\": []}", SNN_ERR_INVALID_ARG, "layers: empty"},
    {"{\"input\": [1, 8, 8], \"layers\": []}", SNN_ERR_INVALID_ARG, "missing key 'num_classes'"},
    {"{\"input\": [1, 8, 8], \"num_classes\": 4, \"layers\": [], \"T\": 0}", SNN_ERR_INVALID_ARG, "T 0"},
    {"{\"input\": [1, 8, 8], \"num_classes\": 4, \"layer\": []}", SNN_ERR_INVALID_ARG, "layer: unknown key"},
    {"{\"input\": [1, 8, 8], \"num_classes\": 4, \"layers\": {}}", SNN_ERR_INVALID_ARG, "layers: expected an array"},
    {"[1, 2, 3]", SNN_ERR_INVALID_ARG, "expected a JSON object"},
    {HEAD "{\"type\": \"leaky\", \"beta\": 0.9, \"beta\": 0.5}]}", SNN_ERR_INVALID_ARG, "layers[0].beta: given twice"},
    {"{\"T\": 3, \"input\": [1, 8, 8], \"num_classes\": 4, \"layers\": [], \"T\": 4}", SNN_ERR_INVALID_ARG,
     "T: given twice"},
    {"", SNN_ERR_INVALID_ARG, "not valid JSON"},
    {"{\"input\": [1, 8, 8]} trailing", SNN_ERR_INVALID_ARG, "not valid JSON"},
};

START_TEST(test_bad_descriptions) {
    const bad_case *c = &bad_cases[_i];
    snn_network *net = (snn_network *)&net;
    snn_status st = snn_network_parse(&net, c->json);
    ck_assert_msg(st == c->want, "case %d: %s returned %s, wanted %s (%s)", _i, c->json, snn_status_name(st),
                  snn_status_name(c->want), snn_last_error());
    ck_assert_ptr_null(net);
    ck_assert_msg(strstr(snn_last_error(), c->mentions) != NULL, "case %d: \"%s\" does not mention \"%s\"", _i,
                  snn_last_error(), c->mentions);
}
END_TEST

/* Hostile sizes: deep nesting and a megabyte of JSON are refused without a crash. */
START_TEST(test_hostile_json) {
    const size_t depth = 100000;
    char *deep = malloc(2 * depth + 1);
    ck_assert_ptr_nonnull(deep);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = '\0';
    snn_network *net;
    ck_assert_snn_status(snn_network_parse(&net, deep), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(snn_last_error(), "nested too deeply"));
    free(deep);

    const size_t big = ((size_t)1 << 20) + 16;
    char *huge = malloc(big + 1);
    ck_assert_ptr_nonnull(huge);
    memset(huge, ' ', big);
    memcpy(huge, "{\"input\": [1, 8, 8], ", 21);
    huge[big - 1] = '}';
    huge[big] = '\0';
    ck_assert_snn_status(snn_network_parse(&net, huge), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(snn_last_error(), "more than a description's"));
    write_bytes(tmp_path("huge.json"), huge, big);
    ck_assert_snn_status(snn_network_load(&net, tmp_path("huge.json")), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(snn_last_error(), "huge.json"));
    free(huge);

    /* 300 layers: more than a part holds. */
    char *many = malloc(300 * 32 + 128);
    ck_assert_ptr_nonnull(many);
    strcpy(many, HEAD);
    for (int i = 0; i < 300; i++) strcat(many, i ? ", {\"type\": \"flatten\"}" : "{\"type\": \"flatten\"}");
    strcat(many, "]}");
    ck_assert_snn_status(snn_network_parse(&net, many), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(snn_last_error(), "layers[256]: more than 256 layers"));
    free(many);
}
END_TEST

/* The C builders make the same description as its JSON. */
START_TEST(test_builders_match_json) {
    snn_network *net;
    ck_assert_snn_ok(snn_network_create(&net, 1, 12, 12, 5, 4));
    ck_assert_snn_ok(snn_network_set_encoding(net, SNN_ENCODING_DIRECT, 1.0f));
    const snn_network_part L = SNN_NET_LAYERS;
    ck_assert_snn_ok(snn_network_conv2d(net, L, 6, 3, 1, 1, 0));
    ck_assert_snn_ok(snn_network_batchnorm2d(net, L));
    ck_assert_snn_ok(snn_network_leaky(net, L, 0.9f, 0.7f, SNN_SURROGATE_FAST_SIGMOID));
    ck_assert_snn_ok(snn_network_pool2d(net, L, 0, 2));
    ck_assert_snn_ok(snn_network_conv2d(net, L, 8, 3, 1, 1, 0));
    snn_layer_desc bn;
    ck_assert_snn_ok(snn_layer_desc_default(&bn, SNN_LAYER_BATCHNORM2D));
    bn.momentum = 0.2f;
    ck_assert_snn_ok(snn_network_add(net, L, &bn));
    ck_assert_snn_ok(snn_network_leaky(net, L, 0.8f, 1.0f, SNN_SURROGATE_FAST_SIGMOID));
    ck_assert_snn_ok(snn_network_flatten(net, L));
    ck_assert_snn_ok(snn_network_linear(net, L, 16));
    ck_assert_snn_ok(snn_network_leaky(net, L, 0.95f, 0.5f, SNN_SURROGATE_FAST_SIGMOID));
    ck_assert_snn_ok(snn_network_dropout(net, SNN_NET_READOUT, 0.25f));
    ck_assert_snn_ok(snn_network_linear(net, SNN_NET_READOUT, 5));
    ck_assert_snn_ok(snn_network_check(net));
    snn_network *parsed;
    ck_assert_snn_ok(snn_network_parse(&parsed, example_json));
    char *a = to_json(net), *b = to_json(parsed);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    snn_network_free(parsed);
    snn_network_free(net);
}
END_TEST

/* A small config of a preset (simple 4,8 or vgg 4,8,8) on 2x8x8, 3 classes, T = 5. */
static snn_model_config small_preset(snn_model_kind kind) {
    snn_model_config cfg;
    ck_assert_snn_ok(snn_model_config_default(&cfg, kind == SNN_MODEL_VGG ? "vgg" : "simple"));
    cfg.in_channels = 2;
    cfg.height = 8;
    cfg.width = 8;
    cfg.num_classes = 3;
    cfg.T = 5;
    cfg.threshold = 0.4f;
    cfg.encoding = SNN_ENCODING_RATE;
    cfg.channels[0] = 4;
    cfg.channels[1] = 8;
    cfg.channels[2] = 8;
    cfg.num_blocks = kind == SNN_MODEL_VGG ? 3 : 2;
    return cfg;
}

/* Logits and the estimate of a model on a fixed batch. */
static void run_model(snn_model *m, const snn_model_config *cfg, float *logits, float *lyap) {
    const int B = 3;
    size_t n = (size_t)B * (size_t)(cfg->in_channels * cfg->height * cfg->width);
    float *x = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(x);
    test_rng r;
    test_rng_seed(&r, 42);
    test_fill_uniform(&r, x, n, 0.0f, 1.0f);
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.lyapunov = 1;
    fp.seed = 9;
    ck_assert_snn_ok(snn_model_forward(m, x, B, &fp, logits, lyap, NULL));
    free(x);
}

/* A preset's description, written out as JSON and read back, makes a model whose
 * parameters are named as the description's (layers.N) and whose numbers are the
 * preset's, bit for bit (same initialization, same kernels). */
static void check_preset_as_description(snn_model_kind kind) {
    snn_model_config cfg = small_preset(kind);
    snn_network *preset;
    ck_assert_snn_ok(snn_network_preset(&preset, &cfg));
    char *json = to_json(preset);
    snn_network *net;
    ck_assert_snn_ok(snn_network_parse(&net, json));
    snn_model *a, *b;
    ck_assert_snn_ok(snn_model_create(&a, test_context(), &cfg, 77));
    ck_assert_snn_ok(snn_model_create_network(&b, test_context(), net, 77));
    ck_assert_int_eq(a->num_params, b->num_params);
    ck_assert_str_eq(b->params[0].name, "layers.0.weight");
    ck_assert_str_eq(a->params[0].name, kind == SNN_MODEL_VGG ? "blocks.0.0.weight" : "blocks.0.conv.weight");
    if (kind == SNN_MODEL_VGG) {
        /* the seed's state_dict order: blocks, then the ModuleList of LIFs, then fc1, lif_fc, fc2 */
        const char *order[] = {"blocks.2.3.num_batches_tracked", "lifs.0.threshold", "lifs.5.beta", "fc1.weight",
                               "lif_fc.beta", "fc2.bias"};
        int last = -1;
        for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
            const snn_param *p = snn_model_param(a, order[k]);
            ck_assert_msg(p != NULL, "no %s", order[k]);
            ck_assert_msg((int)(p - a->params) > last, "%s out of the seed's order", order[k]);
            last = (int)(p - a->params);
        }
    }
    float la[9], lb[9], ya, yb;
    run_model(a, &cfg, la, &ya);
    run_model(b, &cfg, lb, &yb);
    ck_assert_int_eq(memcmp(la, lb, sizeof la), 0);
    ck_assert_int_eq(memcmp(&ya, &yb, sizeof ya), 0);
    double spread = 0;
    for (int i = 1; i < 9; i++) spread += fabs((double)la[i] - la[0]);
    ck_assert_msg(spread > 0, "all logits equal: the comparison would be vacuous");

    /* The preset model's own description is the preset's. */
    snn_network *desc;
    ck_assert_snn_ok(snn_model_network(a, &desc));
    char *json2 = to_json(desc);
    ck_assert_str_eq(json, json2);
    snn_model_config got;
    ck_assert_snn_ok(snn_model_get_config(b, &got));
    ck_assert_int_eq(got.kind, SNN_MODEL_NETWORK);
    ck_assert_int_eq(got.T, cfg.T);
    ck_assert_float_eq(got.threshold, cfg.threshold);
    free(json);
    free(json2);
    snn_network_free(desc);
    snn_network_free(net);
    snn_network_free(preset);
    snn_model_free(a);
    snn_model_free(b);
}

START_TEST(test_simple_as_description) { check_preset_as_description(SNN_MODEL_SIMPLE); }
END_TEST
START_TEST(test_vgg_as_description) { check_preset_as_description(SNN_MODEL_VGG); }
END_TEST

/* A description's model: per-layer beta and threshold reach the kernels, the file
 * carries the description and loads to the same numbers; parameter names as PyTorch's
 * ModuleDict. */
START_TEST(test_network_model_file) {
    snn_network *net;
    ck_assert_snn_ok(snn_network_parse(&net, example_json));
    snn_model *m;
    ck_assert_snn_ok(snn_model_create_network(&m, test_context(), net, 3));
    ck_assert_int_eq(snn_model_num_lif_layers(m), 3);
    ck_assert_float_eq(snn_model_lif_beta(m, 1), 0.8f);
    ck_assert_float_eq(snn_model_lif_threshold(m, 2), 0.5f);
    const char *names[] = {"layers.0.weight", "layers.1.running_var", "layers.2.beta", "layers.5.num_batches_tracked",
                           "layers.8.weight", "layers.8.bias", "layers.9.threshold", "readout.1.weight", "readout.1.bias"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        ck_assert_msg(snn_model_param(m, names[i]) != NULL, "no parameter %s", names[i]);
    ck_assert_float_eq(m->layer[1].bn_momentum, 0.2f);
    ck_assert_float_eq(m->cfg.dropout, 0.25f);
    snn_model_config cfg;
    ck_assert_snn_ok(snn_model_get_config(m, &cfg));
    float l1[15], l2[15], y1, y2;
    run_model(m, &cfg, l1, &y1);
    const char *path = tmp_path("net.safetensors");
    ck_assert_snn_ok(snn_model_save(m, path));
    snn_safetensors *st;
    ck_assert_snn_ok(snn_safetensors_read(&st, path));
    const char *meta = snn_safetensors_meta_get(st, "snncl.network");
    ck_assert_ptr_nonnull(meta);
    ck_assert_ptr_nonnull(strstr(meta, "\"momentum\": 0.2"));
    snn_safetensors_free(st);
    snn_model *loaded;
    ck_assert_snn_ok(snn_model_load(&loaded, test_context(), path));
    run_model(loaded, &cfg, l2, &y2);
    ck_assert_int_eq(memcmp(l1, l2, sizeof l1), 0);
    ck_assert_int_eq(memcmp(&y1, &y2, sizeof y1), 0);

    /* One training step works on it and changes the weights. */
    snn_trainer *tr;
    ck_assert_snn_ok(snn_trainer_create(&tr, loaded, NULL));
    const int B = 4;
    float x[4 * 144];
    int64_t labels[4] = {0, 1, 2, 4};
    test_rng r;
    test_rng_seed(&r, 5);
    test_fill_uniform(&r, x, sizeof x / sizeof x[0], 0.0f, 1.0f);
    snn_batch batch;
    snn_batch_init(&batch);
    batch.input = x;
    batch.labels = labels;
    batch.size = B;
    snn_step_stats stats;
    ck_assert_snn_ok(snn_trainer_step(tr, &batch, &stats));
    ck_assert(isfinite(stats.loss) && stats.loss > 0);
    snn_trainer_free(tr);
    run_model(loaded, &cfg, l2, &y2);
    ck_assert_msg(memcmp(l1, l2, sizeof l1) != 0, "a training step changed nothing");
    snn_model_free(loaded);
    snn_model_free(m);
    snn_network_free(net);
}
END_TEST

/* snn_model_init: PyTorch's module defaults draw weights and biases within
 * 1/sqrt(fan_in); the seed's scheme again gives snn_model_create's weights exactly. */
START_TEST(test_init_schemes) {
    snn_network *net;
    ck_assert_snn_ok(snn_network_parse(&net, example_json));
    snn_model *m, *fresh;
    ck_assert_snn_ok(snn_model_create_network(&m, test_context(), net, 11));
    ck_assert_snn_ok(snn_model_create_network(&fresh, test_context(), net, 11));
    ck_assert_snn_ok(snn_model_init(m, SNN_INIT_PYTORCH, 11));
    const char *names[] = {"layers.0.weight", "layers.8.weight", "layers.8.bias", "readout.1.bias"};
    const double fan_in[] = {9, 288, 288, 16};
    for (size_t i = 0; i < 4; i++) {
        const snn_param *p = snn_model_param(m, names[i]);
        double lo = 0, hi = 0;
        for (size_t k = 0; k < p->count; k++) {
            lo = fmin(lo, p->host[k]);
            hi = fmax(hi, p->host[k]);
        }
        const double bound = 1.0 / sqrt(fan_in[i]);
        ck_assert_msg(hi <= bound && lo >= -bound && hi > 0.5 * bound && lo < -0.5 * bound,
                      "%s: [%g, %g] is not U(-%g, %g)", names[i], lo, hi, bound, bound);
    }
    ck_assert_snn_ok(snn_model_init(m, SNN_INIT_SEED, 11));
    for (int i = 0; i < m->num_params; i++)
        if (m->params[i].dtype == SNN_F32)
            ck_assert_msg(memcmp(m->params[i].host, fresh->params[i].host, m->params[i].count * sizeof(float)) == 0,
                          "%s differs from snn_model_create's", m->params[i].name);
    snn_model_free(m);
    snn_model_free(fresh);
    snn_network_free(net);
}
END_TEST

/* A description the kernels cannot run yet is refused, naming the layer. */
START_TEST(test_unsupported_layers_named) {
    static const struct {
        const char *layers, *mentions;
    } cases[] = {
        {CONV ", {\"type\": \"batchnorm2d\"}, " LIF ", " TAIL, "layers[0] conv2d: a bias before batchnorm2d"},
        {"{\"type\": \"conv2d\", \"out_channels\": 4, \"kernel_size\": 3, \"padding\": 1}, "
         "{\"type\": \"maxpool2d\", \"kernel_size\": 2}, " LIF ", " TAIL,
         "layers[1] maxpool2d: a leaky must come here"},
        {"{\"type\": \"flatten\"}, {\"type\": \"linear\", \"out_features\": 8}, "
         "{\"type\": \"leaky\", \"beta\": 0.9, \"reset_delay\": false}, " TAIL,
         "layers[2] leaky: only reset_delay true runs yet"},
        {"{\"type\": \"maxpool2d\", \"kernel_size\": 2}, " TAIL, "layers[0] maxpool2d: does not run here yet"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[1024];
        snprintf(json, sizeof json, HEAD "%s", cases[i].layers);
        snn_network *net;
        ck_assert_snn_ok(snn_network_parse(&net, json));
        snn_model *m = (snn_model *)&m;
        ck_assert_snn_status(snn_model_create_network(&m, test_context(), net, 1), SNN_ERR_UNSUPPORTED);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(snn_last_error(), cases[i].mentions) != NULL, "\"%s\" does not mention \"%s\"",
                      snn_last_error(), cases[i].mentions);
        snn_network_free(net);
    }
}
END_TEST

static Suite *network_suite(void) {
    Suite *s = suite_create("network");
    TCase *tc = tcase_create("description");
    tcase_add_test(tc, test_parse_shapes_and_round_trip);
    tcase_add_test(tc, test_defaults_are_pytorchs);
    tcase_add_loop_test(tc, test_bad_descriptions, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    tcase_add_test(tc, test_hostile_json);
    tcase_add_test(tc, test_builders_match_json);
    suite_add_tcase(s, tc);
    tc = tcase_create("model");
    tcase_add_test(tc, test_simple_as_description);
    tcase_add_test(tc, test_vgg_as_description);
    tcase_add_test(tc, test_network_model_file);
    tcase_add_test(tc, test_unsupported_layers_named);
    tcase_add_test(tc, test_init_schemes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(network_suite()); }
