/* Network descriptions: defaults, checks and shape inference, the JSON form both ways,
 * and the seed's two models as presets. Host only. */
#include "network.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Sizes a description may ask for: generous for any network, small enough that no
 * product of them with a batch wraps around. */
#define MAX_CHANNELS 65536
#define MAX_FEATURES (1 << 24)
#define MAX_KERNEL 255
#define MAX_STEP_ELEMS ((int64_t)1 << 28) /* one sample's values at one step, any layer */

/* ------------------------------------------------------------------- names -- */

static const char *const type_names[] = {"conv2d", "batchnorm2d", "leaky", "avgpool2d",
                                         "maxpool2d", "flatten", "linear", "dropout"};
static const char *const reset_names[] = {"subtract", "zero", "none"};
static const char *const surrogate_names[] = {"atan", "fast_sigmoid", "sigmoid"};

const char *snn_layer_type_name(snn_layer_type type) {
    return (unsigned)type < SNN_ARRAY_LEN(type_names) ? type_names[type] : "unknown";
}

const char *snn_network_part_name(snn_network_part part) { return part == SNN_NET_READOUT ? "readout" : "layers"; }

static int name_index(const char *const *names, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0) return (int)i;
    return -1;
}

/* What the surrogate's parameter is called in snnTorch. */
static const char *surrogate_param_name(snn_surrogate s) { return s == SNN_SURROGATE_ATAN ? "alpha" : "slope"; }
static float surrogate_param_default(snn_surrogate s) { return s == SNN_SURROGATE_ATAN ? 2.0f : 25.0f; }

/* ---------------------------------------------------------------- defaults -- */

snn_status snn_layer_desc_default(snn_layer_desc *d, snn_layer_type type) {
    SNN_REQUIRE_ARG("snn_layer_desc_default", d);
    if ((unsigned)type >= SNN_ARRAY_LEN(type_names))
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_layer_desc_default: unknown layer type %d", (int)type);
    memset(d, 0, sizeof *d);
    d->type = type;
    d->stride = type == SNN_LAYER_CONV2D ? 1 : 0;
    d->bias = 1;
    d->eps = 1e-5f;
    d->momentum = 0.1f;
    d->beta = NAN;
    d->threshold = 1.0f;
    d->reset_mechanism = SNN_RESET_SUBTRACT;
    d->reset_delay = 1;
    d->surrogate = SNN_SURROGATE_ATAN;
    d->surrogate_param = surrogate_param_default(SNN_SURROGATE_ATAN);
    d->p = 0.5f;
    return SNN_OK;
}

/* --------------------------------------------------------- a layer's fields -- */

#define FIELD_CHECK(cond, ...) \
    if (!(cond)) return snn_fail(SNN_ERR_INVALID_ARG, __VA_ARGS__)

/* The fields of one layer on their own; `at` names it ("layers[3]"). */
static snn_status check_fields(const snn_layer_desc *d, const char *at) {
    const char *t = snn_layer_type_name(d->type);
    switch (d->type) {
    case SNN_LAYER_CONV2D:
        FIELD_CHECK(d->out >= 1 && d->out <= MAX_CHANNELS, "%s.out_channels: %d is outside 1..%d", at, d->out,
                    MAX_CHANNELS);
        /* fall through - a convolution's kernel is checked as a pool's */
    case SNN_LAYER_AVGPOOL2D:
    case SNN_LAYER_MAXPOOL2D:
        FIELD_CHECK(d->kernel_size >= 1 && d->kernel_size <= MAX_KERNEL, "%s.kernel_size: %d is outside 1..%d", at,
                    d->kernel_size, MAX_KERNEL);
        FIELD_CHECK(d->stride >= (d->type == SNN_LAYER_CONV2D) && d->stride <= MAX_KERNEL,
                    "%s.stride: %d is outside %d..%d", at, d->stride, d->type == SNN_LAYER_CONV2D, MAX_KERNEL);
        FIELD_CHECK(d->padding >= 0 && d->padding <= MAX_KERNEL, "%s.padding: %d is outside 0..%d", at, d->padding,
                    MAX_KERNEL);
        FIELD_CHECK(d->type == SNN_LAYER_CONV2D || d->padding == 0, "%s: %s takes no padding", at, t);
        return SNN_OK;
    case SNN_LAYER_BATCHNORM2D:
        FIELD_CHECK(isfinite(d->eps) && d->eps > 0.0f, "%s.eps: %g is not a positive number", at, (double)d->eps);
        FIELD_CHECK(d->momentum >= 0.0f && d->momentum <= 1.0f, "%s.momentum: %g is outside [0, 1]", at,
                    (double)d->momentum);
        return SNN_OK;
    case SNN_LAYER_LEAKY:
        FIELD_CHECK(isfinite(d->beta), "%s.beta: required, a finite number", at);
        FIELD_CHECK(isfinite(d->threshold), "%s.threshold: %g is not finite", at, (double)d->threshold);
        FIELD_CHECK((unsigned)d->reset_mechanism < SNN_ARRAY_LEN(reset_names), "%s.reset_mechanism: unknown value %d",
                    at, (int)d->reset_mechanism);
        FIELD_CHECK((unsigned)d->surrogate < SNN_ARRAY_LEN(surrogate_names), "%s.surrogate: unknown type %d", at,
                    (int)d->surrogate);
        FIELD_CHECK(isfinite(d->surrogate_param) && d->surrogate_param > 0.0f, "%s.surrogate.%s: %g is not positive",
                    at, surrogate_param_name(d->surrogate), (double)d->surrogate_param);
        return SNN_OK;
    case SNN_LAYER_LINEAR:
        FIELD_CHECK(d->out >= 1 && d->out <= MAX_FEATURES, "%s.out_features: %d is outside 1..%d", at, d->out,
                    MAX_FEATURES);
        return SNN_OK;
    case SNN_LAYER_DROPOUT:
        FIELD_CHECK(d->p >= 0.0f && d->p < 1.0f, "%s.p: %g is outside [0, 1)", at, (double)d->p);
        return SNN_OK;
    case SNN_LAYER_FLATTEN: return SNN_OK;
    }
    return snn_fail(SNN_ERR_INVALID_ARG, "%s: unknown layer type %d", at, (int)d->type);
}

/* ------------------------------------------------------------ construction -- */

snn_status snn_network_create(snn_network **out, int in_channels, int height, int width, int num_classes, int T) {
    SNN_REQUIRE_ARG("snn_network_create", out);
    *out = NULL;
    FIELD_CHECK(in_channels >= 1 && in_channels <= MAX_CHANNELS, "snn_network_create: in_channels %d is outside 1..%d",
                in_channels, MAX_CHANNELS);
    FIELD_CHECK(height >= 1 && width >= 1 && height <= 16384 && width <= 16384,
                "snn_network_create: input %dx%d is outside 1..16384", height, width);
    FIELD_CHECK(num_classes >= 1 && num_classes <= 1000000, "snn_network_create: num_classes %d is outside 1..1000000",
                num_classes);
    FIELD_CHECK(T >= 1 && T <= 100000, "snn_network_create: T %d is outside 1..100000", T);
    snn_network *n = calloc(1, sizeof *n);
    if (!n) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "snn_network_create");
    n->in_channels = in_channels;
    n->height = height;
    n->width = width;
    n->num_classes = num_classes;
    n->T = T;
    n->encoding = SNN_ENCODING_RATE;
    n->gain = 1.0f;
    n->preset = -1;
    *out = n;
    return SNN_OK;
}

void snn_network_free(snn_network *net) {
    if (!net) return;
    free(net->part[0]);
    free(net->part[1]);
    free(net);
}

snn_status snn_network_set_encoding(snn_network *net, snn_encoding encoding, float gain) {
    SNN_REQUIRE_ARG("snn_network_set_encoding", net);
    FIELD_CHECK(encoding >= SNN_ENCODING_RATE && encoding <= SNN_ENCODING_NONE,
                "snn_network_set_encoding: unknown encoding %d", (int)encoding);
    FIELD_CHECK(isfinite(gain), "snn_network_set_encoding: gain %g is not finite", (double)gain);
    net->encoding = encoding;
    net->gain = gain;
    return SNN_OK;
}

static int valid_part(snn_network_part part) { return part == SNN_NET_LAYERS || part == SNN_NET_READOUT; }

snn_status snn_network_append(snn_network *net, snn_network_part part, const snn_layer_desc *d, const char *name) {
    char at[32];
    snprintf(at, sizeof at, "%s[%d]", snn_network_part_name(part), net->count[part]);
    SNN_TRY(check_fields(d, at));
    if (net->count[part] == SNN_NET_MAX_LAYERS)
        return snn_fail(SNN_ERR_INVALID_ARG, "%s: more than %d layers", at, SNN_NET_MAX_LAYERS);
    if (net->count[part] == net->cap[part]) {
        int cap = net->cap[part] ? 2 * net->cap[part] : 16;
        snn_net_layer *grown = realloc(net->part[part], (size_t)cap * sizeof *grown);
        if (!grown) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "%s", at);
        net->part[part] = grown;
        net->cap[part] = cap;
    }
    snn_net_layer *l = &net->part[part][net->count[part]];
    memset(l, 0, sizeof *l);
    l->d = *d;
    memset(l->d.reserved, 0, sizeof l->d.reserved);
    if (name) snprintf(l->name, sizeof l->name, "%s", name);
    else snprintf(l->name, sizeof l->name, "%s.%d", snn_network_part_name(part), net->count[part]);
    net->count[part]++;
    return SNN_OK;
}

snn_status snn_network_add(snn_network *net, snn_network_part part, const snn_layer_desc *desc) {
    SNN_REQUIRE_ARG("snn_network_add", net);
    SNN_REQUIRE_ARG("snn_network_add", desc);
    FIELD_CHECK(valid_part(part), "snn_network_add: unknown part %d", (int)part);
    return snn_network_append(net, part, desc, NULL);
}

/* The one-call builders: a default of the type, a few fields set, snn_network_add. */
#define BUILDER_START(fn, type)                                       \
    SNN_REQUIRE_ARG(fn, net);                                         \
    snn_layer_desc d;                                                 \
    SNN_TRY(snn_layer_desc_default(&d, type))

snn_status snn_network_conv2d(snn_network *net, snn_network_part part, int out_channels, int kernel_size, int stride,
                              int padding, int bias) {
    BUILDER_START("snn_network_conv2d", SNN_LAYER_CONV2D);
    d.out = out_channels;
    d.kernel_size = kernel_size;
    d.stride = stride;
    d.padding = padding;
    d.bias = bias != 0;
    return snn_network_add(net, part, &d);
}

snn_status snn_network_batchnorm2d(snn_network *net, snn_network_part part) {
    BUILDER_START("snn_network_batchnorm2d", SNN_LAYER_BATCHNORM2D);
    return snn_network_add(net, part, &d);
}

snn_status snn_network_leaky(snn_network *net, snn_network_part part, float beta, float threshold,
                             snn_surrogate surrogate) {
    BUILDER_START("snn_network_leaky", SNN_LAYER_LEAKY);
    d.beta = beta;
    d.threshold = threshold;
    d.surrogate = surrogate;
    d.surrogate_param = surrogate_param_default(surrogate);
    return snn_network_add(net, part, &d);
}

snn_status snn_network_pool2d(snn_network *net, snn_network_part part, int max, int kernel_size) {
    BUILDER_START("snn_network_pool2d", max ? SNN_LAYER_MAXPOOL2D : SNN_LAYER_AVGPOOL2D);
    d.kernel_size = kernel_size;
    return snn_network_add(net, part, &d);
}

snn_status snn_network_flatten(snn_network *net, snn_network_part part) {
    BUILDER_START("snn_network_flatten", SNN_LAYER_FLATTEN);
    return snn_network_add(net, part, &d);
}

snn_status snn_network_linear(snn_network *net, snn_network_part part, int out_features) {
    BUILDER_START("snn_network_linear", SNN_LAYER_LINEAR);
    d.out = out_features;
    return snn_network_add(net, part, &d);
}

snn_status snn_network_dropout(snn_network *net, snn_network_part part, float p) {
    BUILDER_START("snn_network_dropout", SNN_LAYER_DROPOUT);
    d.p = p;
    return snn_network_add(net, part, &d);
}

/* --------------------------------------------------------- shape inference -- */

/* One layer's output from its input (ndim, s); `at` names it. */
static snn_status infer_layer(snn_net_layer *l, int ndim, const int64_t *s, const char *at) {
    const snn_layer_desc *d = &l->d;
    const char *t = snn_layer_type_name(d->type);
    l->ndim = ndim;
    memcpy(l->shape, s, sizeof l->shape);
    switch (d->type) {
    case SNN_LAYER_CONV2D:
    case SNN_LAYER_AVGPOOL2D:
    case SNN_LAYER_MAXPOOL2D: {
        if (ndim != 3)
            return snn_fail(SNN_ERR_SHAPE, "%s %s: needs a C x H x W input, got %lld features", at, t,
                            (long long)s[0]);
        const int64_t k = d->kernel_size, st = d->stride ? d->stride : k, p = d->padding;
        if (s[1] + 2 * p < k || s[2] + 2 * p < k) {
            if (p)
                return snn_fail(SNN_ERR_SHAPE, "%s %s: %lldx%lld input (padded by %lld) smaller than kernel %lld", at,
                                t, (long long)s[1], (long long)s[2], (long long)p, (long long)k);
            return snn_fail(SNN_ERR_SHAPE, "%s %s: %lldx%lld input smaller than kernel %lld", at, t, (long long)s[1],
                            (long long)s[2], (long long)k);
        }
        l->shape[0] = d->type == SNN_LAYER_CONV2D ? d->out : s[0];
        l->shape[1] = (s[1] + 2 * p - k) / st + 1;
        l->shape[2] = (s[2] + 2 * p - k) / st + 1;
        break;
    }
    case SNN_LAYER_BATCHNORM2D:
        if (ndim != 3)
            return snn_fail(SNN_ERR_SHAPE, "%s batchnorm2d: needs a C x H x W input, got %lld features", at,
                            (long long)s[0]);
        break;
    case SNN_LAYER_FLATTEN:
        if (ndim == 3) {
            l->ndim = 1;
            l->shape[0] = s[0] * s[1] * s[2];
            l->shape[1] = l->shape[2] = 0;
        }
        break;
    case SNN_LAYER_LINEAR:
        if (ndim != 1)
            return snn_fail(SNN_ERR_SHAPE, "%s linear: needs features, got a %lldx%lldx%lld input (add a flatten before it)",
                            at, (long long)s[0], (long long)s[1], (long long)s[2]);
        l->shape[0] = d->out;
        break;
    case SNN_LAYER_LEAKY:
    case SNN_LAYER_DROPOUT: break;
    }
    const int64_t elems = l->ndim == 3 ? l->shape[0] * l->shape[1] * l->shape[2] : l->shape[0];
    if (elems > MAX_STEP_ELEMS)
        return snn_fail(SNN_ERR_SHAPE, "%s %s: its output holds %lld values per sample, more than %lld", at, t,
                        (long long)elems, (long long)MAX_STEP_ELEMS);
    return SNN_OK;
}

snn_status snn_network_infer(snn_network *net) {
    int ndim = 3;
    int64_t s[3] = {net->in_channels, net->height, net->width};
    char at[32];
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < net->count[p]; i++) {
            snn_net_layer *l = &net->part[p][i];
            snprintf(at, sizeof at, "%s[%d]", snn_network_part_name((snn_network_part)p), i);
            SNN_TRY(infer_layer(l, ndim, s, at));
            ndim = l->ndim;
            memcpy(s, l->shape, sizeof s);
        }
    if (net->count[SNN_NET_LAYERS] == 0) return snn_fail(SNN_ERR_INVALID_ARG, "layers: empty (a network needs layers)");
    const char *what = net->count[SNN_NET_READOUT] ? "the readout" : "the layers (the readout is empty)";
    if (ndim != 1)
        return snn_fail(SNN_ERR_SHAPE, "%s end in a %lldx%lldx%lld output, not %d class scores (add a flatten)", what,
                        (long long)s[0], (long long)s[1], (long long)s[2], net->num_classes);
    if (s[0] != net->num_classes)
        return snn_fail(SNN_ERR_SHAPE, "%s end in %lld outputs, but num_classes is %d", what, (long long)s[0],
                        net->num_classes);
    return SNN_OK;
}

snn_status snn_network_check(const snn_network *net) {
    SNN_REQUIRE_ARG("snn_network_check", net);
    return snn_network_infer((snn_network *)net);
}

/* --------------------------------------------------------------- accessors -- */

int snn_network_num_layers(const snn_network *net, snn_network_part part) {
    return net && valid_part(part) ? net->count[part] : 0;
}

snn_status snn_network_layer(const snn_network *net, snn_network_part part, int index, snn_layer_desc *desc,
                             int *ndim, int64_t shape[3]) {
    SNN_REQUIRE_ARG("snn_network_layer", net);
    FIELD_CHECK(valid_part(part), "snn_network_layer: unknown part %d", (int)part);
    FIELD_CHECK(index >= 0 && index < net->count[part], "snn_network_layer: %s[%d] out of range (%d layers)",
                snn_network_part_name(part), index, net->count[part]);
    if (ndim || shape) SNN_TRY(snn_network_infer((snn_network *)net));
    const snn_net_layer *l = &net->part[part][index];
    if (desc) *desc = l->d;
    if (ndim) *ndim = l->ndim;
    if (shape) memcpy(shape, l->shape, sizeof l->shape);
    return SNN_OK;
}

snn_status snn_network_input(const snn_network *net, int *in_channels, int *height, int *width, int *num_classes,
                             int *T, snn_encoding *encoding, float *gain) {
    SNN_REQUIRE_ARG("snn_network_input", net);
    if (in_channels) *in_channels = net->in_channels;
    if (height) *height = net->height;
    if (width) *width = net->width;
    if (num_classes) *num_classes = net->num_classes;
    if (T) *T = net->T;
    if (encoding) *encoding = net->encoding;
    if (gain) *gain = net->gain;
    return SNN_OK;
}

snn_status snn_network_copy(const snn_network *net, snn_network **out) {
    snn_network *n;
    SNN_TRY(snn_network_create(&n, net->in_channels, net->height, net->width, net->num_classes, net->T));
    n->encoding = net->encoding;
    n->gain = net->gain;
    n->preset = net->preset;
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < net->count[p]; i++) {
            snn_status st = snn_network_append(n, (snn_network_part)p, &net->part[p][i].d, net->part[p][i].name);
            if (st != SNN_OK) {
                snn_network_free(n);
                return st;
            }
            n->part[p][i].ndim = net->part[p][i].ndim;
            n->part[p][i].param_rank = net->part[p][i].param_rank;
            memcpy(n->part[p][i].shape, net->part[p][i].shape, sizeof n->part[p][i].shape);
        }
    *out = n;
    return SNN_OK;
}

/* ------------------------------------------------------------- JSON, read -- */

typedef struct json_reader {
    char at[96]; /* "layers[3]" or "layers[3].surrogate" */
} json_reader;

static const char *json_kind(const cJSON *v) {
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

static snn_status want_int(const char *at, const cJSON *v, int *out) {
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 2147483647.0)
        return snn_fail(SNN_ERR_INVALID_ARG, "%s.%s: expected an integer, got %s%s", at, v->string, json_kind(v),
                        cJSON_IsNumber(v) ? " that is not one" : "");
    *out = (int)v->valuedouble;
    return SNN_OK;
}

static snn_status want_float(const char *at, const cJSON *v, float *out) {
    if (!cJSON_IsNumber(v)) return snn_fail(SNN_ERR_INVALID_ARG, "%s.%s: expected a number, got %s", at, v->string, json_kind(v));
    *out = (float)v->valuedouble;
    return SNN_OK;
}

static snn_status want_bool(const char *at, const cJSON *v, int *out) {
    if (!cJSON_IsBool(v)) return snn_fail(SNN_ERR_INVALID_ARG, "%s.%s: expected true or false, got %s", at, v->string, json_kind(v));
    *out = cJSON_IsTrue(v);
    return SNN_OK;
}

static snn_status want_name(const char *at, const cJSON *v, const char *const *names, size_t n, int *out) {
    if (!cJSON_IsString(v)) return snn_fail(SNN_ERR_INVALID_ARG, "%s.%s: expected a string, got %s", at, v->string, json_kind(v));
    int k = name_index(names, n, v->valuestring);
    if (k < 0) {
        char list[160] = "";
        for (size_t i = 0; i < n; i++) {
            size_t len = strlen(list);
            snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", names[i]);
        }
        return snn_fail(SNN_ERR_INVALID_ARG, "%s.%s: unknown value '%s' (expected %s)", at, v->string, v->valuestring, list);
    }
    *out = k;
    return SNN_OK;
}

/* The first key an object holds twice, or NULL (cJSON keeps both; which one counts would
 * be an accident of the parser). */
static const char *duplicate_key(const cJSON *obj) {
    for (const cJSON *a = obj->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (a->string && b->string && strcmp(a->string, b->string) == 0) return a->string;
    return NULL;
}

/* kernel_size as an integer or a square [k, k]. */
static snn_status want_square(const char *at, const cJSON *v, int *out) {
    if (cJSON_IsArray(v)) {
        const cJSON *a = cJSON_GetArrayItem(v, 0), *b = cJSON_GetArrayItem(v, 1);
        if (cJSON_GetArraySize(v) != 2 || !cJSON_IsNumber(a) || !cJSON_IsNumber(b) || a->valuedouble != b->valuedouble)
            return snn_fail(SNN_ERR_INVALID_ARG, "%s.%s: expected an integer or [k, k] (square only)", at, v->string);
        cJSON one = *a;
        one.string = v->string;
        return want_int(at, &one, out);
    }
    return want_int(at, v, out);
}

static snn_status read_surrogate(const char *at, const cJSON *obj, snn_layer_desc *d) {
    char here[128];
    snprintf(here, sizeof here, "%s.surrogate", at);
    if (!cJSON_IsObject(obj))
        return snn_fail(SNN_ERR_INVALID_ARG, "%s: expected an object {\"type\": ...}, got %s", here, json_kind(obj));
    const char *twice = duplicate_key(obj);
    if (twice) return snn_fail(SNN_ERR_INVALID_ARG, "%s.%s: given twice", here, twice);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "type");
    if (!type) return snn_fail(SNN_ERR_INVALID_ARG, "%s: missing key 'type'", here);
    int s = 0;
    SNN_TRY(want_name(here, type, surrogate_names, SNN_ARRAY_LEN(surrogate_names), &s));
    d->surrogate = (snn_surrogate)s;
    d->surrogate_param = surrogate_param_default(d->surrogate);
    const cJSON *v;
    cJSON_ArrayForEach(v, obj) {
        if (strcmp(v->string, "type") == 0) continue;
        if (strcmp(v->string, surrogate_param_name(d->surrogate)) != 0)
            return snn_fail(SNN_ERR_INVALID_ARG, "%s.%s: unknown key (%s takes %s)", here, v->string,
                            surrogate_names[s], surrogate_param_name(d->surrogate));
        SNN_TRY(want_float(here, v, &d->surrogate_param));
    }
    return SNN_OK;
}

/* The keys each type takes, besides "type". */
static int key_allowed(snn_layer_type t, const char *k) {
    switch (t) {
    case SNN_LAYER_CONV2D:
        return !strcmp(k, "out_channels") || !strcmp(k, "kernel_size") || !strcmp(k, "stride") ||
               !strcmp(k, "padding") || !strcmp(k, "bias");
    case SNN_LAYER_BATCHNORM2D: return !strcmp(k, "eps") || !strcmp(k, "momentum");
    case SNN_LAYER_LEAKY:
        return !strcmp(k, "beta") || !strcmp(k, "threshold") || !strcmp(k, "reset_mechanism") ||
               !strcmp(k, "reset_delay") || !strcmp(k, "surrogate") || !strcmp(k, "learn_beta") ||
               !strcmp(k, "learn_threshold");
    case SNN_LAYER_AVGPOOL2D:
    case SNN_LAYER_MAXPOOL2D: return !strcmp(k, "kernel_size") || !strcmp(k, "stride");
    case SNN_LAYER_LINEAR: return !strcmp(k, "out_features") || !strcmp(k, "bias");
    case SNN_LAYER_DROPOUT: return !strcmp(k, "p");
    case SNN_LAYER_FLATTEN: return 0;
    }
    return 0;
}

static snn_status read_layer(const char *at, const cJSON *obj, snn_layer_desc *d) {
    if (!cJSON_IsObject(obj)) return snn_fail(SNN_ERR_INVALID_ARG, "%s: expected an object, got %s", at, json_kind(obj));
    const char *twice = duplicate_key(obj);
    if (twice) return snn_fail(SNN_ERR_INVALID_ARG, "%s.%s: given twice", at, twice);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "type");
    if (!type) return snn_fail(SNN_ERR_INVALID_ARG, "%s: missing key 'type'", at);
    int t = 0;
    SNN_TRY(want_name(at, type, type_names, SNN_ARRAY_LEN(type_names), &t));
    SNN_TRY(snn_layer_desc_default(d, (snn_layer_type)t));
    int have_out = 0, have_kernel = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, obj) {
        const char *k = v->string;
        if (!strcmp(k, "type")) continue;
        if (!key_allowed(d->type, k)) return snn_fail(SNN_ERR_INVALID_ARG, "%s.%s: unknown key for %s", at, k, type_names[t]);
        if (!strcmp(k, "out_channels") || !strcmp(k, "out_features")) {
            SNN_TRY(want_int(at, v, &d->out));
            have_out = 1;
        } else if (!strcmp(k, "kernel_size")) {
            SNN_TRY(want_square(at, v, &d->kernel_size));
            have_kernel = 1;
        } else if (!strcmp(k, "stride")) {
            if (!cJSON_IsNull(v)) SNN_TRY(want_square(at, v, &d->stride)); /* pools: null is kernel_size */
            else if (d->type == SNN_LAYER_CONV2D)
                return snn_fail(SNN_ERR_INVALID_ARG, "%s.stride: expected an integer, got null", at);
        } else if (!strcmp(k, "padding")) SNN_TRY(want_square(at, v, &d->padding));
        else if (!strcmp(k, "bias")) SNN_TRY(want_bool(at, v, &d->bias));
        else if (!strcmp(k, "eps")) SNN_TRY(want_float(at, v, &d->eps));
        else if (!strcmp(k, "momentum")) SNN_TRY(want_float(at, v, &d->momentum));
        else if (!strcmp(k, "beta")) SNN_TRY(want_float(at, v, &d->beta));
        else if (!strcmp(k, "threshold")) SNN_TRY(want_float(at, v, &d->threshold));
        else if (!strcmp(k, "reset_mechanism")) {
            int r;
            SNN_TRY(want_name(at, v, reset_names, SNN_ARRAY_LEN(reset_names), &r));
            d->reset_mechanism = (snn_reset)r;
        } else if (!strcmp(k, "reset_delay")) SNN_TRY(want_bool(at, v, &d->reset_delay));
        else if (!strcmp(k, "surrogate")) SNN_TRY(read_surrogate(at, v, d));
        else if (!strcmp(k, "learn_beta")) SNN_TRY(want_bool(at, v, &d->learn_beta));
        else if (!strcmp(k, "learn_threshold")) SNN_TRY(want_bool(at, v, &d->learn_threshold));
        else if (!strcmp(k, "p")) SNN_TRY(want_float(at, v, &d->p));
    }
    if ((d->type == SNN_LAYER_CONV2D || d->type == SNN_LAYER_LINEAR) && !have_out)
        return snn_fail(SNN_ERR_INVALID_ARG, "%s: missing key '%s'", at,
                        d->type == SNN_LAYER_CONV2D ? "out_channels" : "out_features");
    if ((d->type == SNN_LAYER_CONV2D || d->type == SNN_LAYER_AVGPOOL2D || d->type == SNN_LAYER_MAXPOOL2D) &&
        !have_kernel)
        return snn_fail(SNN_ERR_INVALID_ARG, "%s: missing key 'kernel_size'", at);
    if (d->type == SNN_LAYER_LEAKY && !cJSON_GetObjectItemCaseSensitive(obj, "beta"))
        return snn_fail(SNN_ERR_INVALID_ARG, "%s: missing key 'beta'", at);
    return SNN_OK;
}

static snn_status read_part(snn_network *n, snn_network_part part, const cJSON *arr) {
    const char *pn = snn_network_part_name(part);
    if (!cJSON_IsArray(arr)) return snn_fail(SNN_ERR_INVALID_ARG, "%s: expected an array of layers, got %s", pn, json_kind(arr));
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) {
        char at[32];
        snprintf(at, sizeof at, "%s[%d]", pn, i++);
        snn_layer_desc d;
        SNN_TRY(read_layer(at, v, &d));
        SNN_TRY(snn_network_append(n, part, &d, NULL));
    }
    return SNN_OK;
}

static snn_status read_network(const cJSON *root, snn_network **out) {
    if (!cJSON_IsObject(root)) return snn_fail(SNN_ERR_INVALID_ARG, "network: expected a JSON object, got %s", json_kind(root));
    static const char *const keys[] = {"input", "num_classes", "T", "encoding", "encoding_gain", "layers", "readout"};
    const char *twice = duplicate_key(root);
    if (twice) return snn_fail(SNN_ERR_INVALID_ARG, "%s: given twice", twice);
    const cJSON *v;
    cJSON_ArrayForEach(v, root) {
        if (name_index(keys, SNN_ARRAY_LEN(keys), v->string) < 0)
            return snn_fail(SNN_ERR_INVALID_ARG, "%s: unknown key (expected input, num_classes, T, encoding, "
                            "encoding_gain, layers, readout)", v->string);
    }
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(root, "input");
    if (!input) return snn_fail(SNN_ERR_INVALID_ARG, "network: missing key 'input' ([channels, height, width])");
    int dims[3];
    if (!cJSON_IsArray(input) || cJSON_GetArraySize(input) != 3)
        return snn_fail(SNN_ERR_INVALID_ARG, "input: expected [channels, height, width]");
    for (int i = 0; i < 3; i++) {
        char at[16];
        snprintf(at, sizeof at, "input[%d]", i);
        const cJSON *item = cJSON_GetArrayItem(input, i);
        if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble) || item->valuedouble < 1 ||
            item->valuedouble > 65536)
            return snn_fail(SNN_ERR_INVALID_ARG, "%s: expected an integer in 1..65536, got %s", at, json_kind(item));
        dims[i] = (int)item->valuedouble;
    }
    int classes = 0, T = 25;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "num_classes");
    if (!c) return snn_fail(SNN_ERR_INVALID_ARG, "network: missing key 'num_classes'");
    SNN_TRY(want_int("network", c, &classes));
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "T"))) SNN_TRY(want_int("network", v, &T));
    snn_network *n;
    snn_status st = snn_network_create(&n, dims[0], dims[1], dims[2], classes, T);
    if (st != SNN_OK) return snn_fail_context(SNN_ERR_INVALID_ARG, "network");
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "encoding"))) {
        int e = 0;
        static const char *const enc[] = {"rate", "direct", "none"};
        SNN_CHECK_GOTO(st, want_name("network", v, enc, 3, &e), fail);
        n->encoding = (snn_encoding)e;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "encoding_gain"))) {
        SNN_CHECK_GOTO(st, want_float("network", v, &n->gain), fail);
        if (!isfinite(n->gain)) {
            st = snn_fail(SNN_ERR_INVALID_ARG, "encoding_gain: not finite");
            goto fail;
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "layers");
    if (!v) {
        st = snn_fail(SNN_ERR_INVALID_ARG, "network: missing key 'layers'");
        goto fail;
    }
    SNN_CHECK_GOTO(st, read_part(n, SNN_NET_LAYERS, v), fail);
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "readout"))) SNN_CHECK_GOTO(st, read_part(n, SNN_NET_READOUT, v), fail);
    SNN_CHECK_GOTO(st, snn_network_infer(n), fail);
    *out = n;
    return SNN_OK;
fail:
    snn_network_free(n);
    return st;
}

/* Descriptions are small; anything near this is not one. */
#define MAX_JSON_BYTES ((size_t)1 << 20)

snn_status snn_network_parse(snn_network **out, const char *json) {
    SNN_REQUIRE_ARG("snn_network_parse", out);
    *out = NULL;
    SNN_REQUIRE_ARG("snn_network_parse", json);
    size_t len = strlen(json);
    if (len > MAX_JSON_BYTES)
        return snn_fail(SNN_ERR_INVALID_ARG, "network: %zu bytes of JSON, more than a description's %zu", len,
                        MAX_JSON_BYTES);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
    if (!root) {
        size_t off = end && end >= json ? (size_t)(end - json) : 0;
        size_t line = 1;
        for (size_t i = 0; i < off && i < len; i++) line += json[i] == '\n';
        return snn_fail(SNN_ERR_INVALID_ARG, "network: not valid JSON (or nested too deeply) at byte %zu, line %zu",
                        off, line);
    }
    snn_status st = read_network(root, out);
    cJSON_Delete(root);
    return st;
}

snn_status snn_network_load(snn_network **out, const char *path) {
    SNN_REQUIRE_ARG("snn_network_load", out);
    *out = NULL;
    SNN_REQUIRE_ARG("snn_network_load", path);
    FILE *f = fopen(path, "rb");
    if (!f) return snn_fail(SNN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *text = malloc(MAX_JSON_BYTES + 2);
    size_t size = text ? fread(text, 1, MAX_JSON_BYTES + 1, f) : 0;
    int bad = text ? ferror(f) : 0;
    fclose(f);
    if (!text) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "%s", path);
    if (bad) {
        free(text);
        return snn_fail(SNN_ERR_IO, "%s: read failed", path);
    }
    text[size] = '\0';
    snn_status st = size > MAX_JSON_BYTES || strlen(text) != size
                        ? snn_fail(SNN_ERR_INVALID_ARG, "network: larger than %zu bytes, or holds a NUL byte",
                                   MAX_JSON_BYTES)
                        : snn_network_parse(out, text);
    free(text);
    if (st != SNN_OK) return snn_fail_context(st, "%s", path);
    return SNN_OK;
}

/* ------------------------------------------------------------ JSON, write -- */

typedef struct text_buf {
    char *s;
    size_t len, cap;
    int failed;
} text_buf;

static void put(text_buf *b, const char *fmt, ...) SNN_PRINTF(2, 3);
static void put(text_buf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 1024;
        while (cap <= b->len + (size_t)n) cap *= 2;
        char *grown = realloc(b->s, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->s = grown;
        b->cap = cap;
    }
}

static const char *tf(int v) { return v ? "true" : "false"; }

/* The shortest text that reads back as the same float (0.9, not 0.899999976). */
typedef struct float_text {
    char s[32];
} float_text;

static float_text ft(float v) {
    float_text t;
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(t.s, sizeof t.s, "%.*g", digits, (double)v);
        if (strtof(t.s, NULL) == v) break;
    }
    return t;
}

static void put_layer(text_buf *b, const snn_layer_desc *d) {
    put(b, "{\"type\": \"%s\"", snn_layer_type_name(d->type));
    switch (d->type) {
    case SNN_LAYER_CONV2D:
        put(b, ", \"out_channels\": %d, \"kernel_size\": %d, \"stride\": %d, \"padding\": %d, \"bias\": %s", d->out,
            d->kernel_size, d->stride, d->padding, tf(d->bias));
        break;
    case SNN_LAYER_BATCHNORM2D: put(b, ", \"eps\": %s, \"momentum\": %s", ft(d->eps).s, ft(d->momentum).s); break;
    case SNN_LAYER_LEAKY:
        put(b, ", \"beta\": %s, \"threshold\": %s, \"reset_mechanism\": \"%s\", \"reset_delay\": %s, "
               "\"surrogate\": {\"type\": \"%s\", \"%s\": %s}, \"learn_beta\": %s, \"learn_threshold\": %s",
            ft(d->beta).s, ft(d->threshold).s, reset_names[d->reset_mechanism], tf(d->reset_delay),
            surrogate_names[d->surrogate], surrogate_param_name(d->surrogate), ft(d->surrogate_param).s,
            tf(d->learn_beta), tf(d->learn_threshold));
        break;
    case SNN_LAYER_AVGPOOL2D:
    case SNN_LAYER_MAXPOOL2D:
        put(b, ", \"kernel_size\": %d, \"stride\": %d", d->kernel_size, d->stride ? d->stride : d->kernel_size);
        break;
    case SNN_LAYER_LINEAR: put(b, ", \"out_features\": %d, \"bias\": %s", d->out, tf(d->bias)); break;
    case SNN_LAYER_DROPOUT: put(b, ", \"p\": %s", ft(d->p).s); break;
    case SNN_LAYER_FLATTEN: break;
    }
    put(b, "}");
}

snn_status snn_network_json_alloc(const snn_network *net, char **out) {
    text_buf b = {0};
    put(&b, "{\n  \"input\": [%d, %d, %d],\n  \"num_classes\": %d,\n  \"T\": %d,\n", net->in_channels, net->height,
        net->width, net->num_classes, net->T);
    put(&b, "  \"encoding\": \"%s\",\n  \"encoding_gain\": %s,\n", snn_encoding_name(net->encoding), ft(net->gain).s);
    for (int p = 0; p < 2; p++) {
        put(&b, "  \"%s\": [", snn_network_part_name((snn_network_part)p));
        for (int i = 0; i < net->count[p]; i++) {
            put(&b, "%s\n    ", i ? "," : "");
            put_layer(&b, &net->part[p][i].d);
        }
        put(&b, "%s]%s\n", net->count[p] ? "\n  " : "", p == 0 ? "," : "");
    }
    put(&b, "}\n");
    if (b.failed) {
        free(b.s);
        return snn_fail(SNN_ERR_OUT_OF_MEMORY, "network JSON");
    }
    *out = b.s;
    return SNN_OK;
}

snn_status snn_network_to_json(const snn_network *net, char *buf, size_t size, size_t *needed) {
    SNN_REQUIRE_ARG("snn_network_to_json", net);
    SNN_REQUIRE_ARG("snn_network_to_json", needed);
    if (!buf && size) return snn_fail(SNN_ERR_INVALID_ARG, "snn_network_to_json: buf is NULL but size is %zu", size);
    char *text;
    SNN_TRY(snn_network_json_alloc(net, &text));
    size_t n = strlen(text) + 1;
    *needed = n;
    snn_status st = SNN_OK;
    if (size < n) st = snn_fail(SNN_ERR_INVALID_ARG, "snn_network_to_json: the text needs %zu bytes, buf has %zu", n, size);
    else memcpy(buf, text, n);
    free(text);
    return st;
}
