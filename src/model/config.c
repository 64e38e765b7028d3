/* Model configurations: the seed's defaults, names, validation, reading them from a
 * model file's metadata and tensor shapes, and the presets as network descriptions
 * (host only, so the fuzzers reach it). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

snn_status snn_model_config_default(snn_model_config *cfg, const char *name) {
    SNN_REQUIRE_ARG("snn_model_config_default", cfg);
    SNN_REQUIRE_ARG("snn_model_config_default", name);
    memset(cfg, 0, sizeof *cfg);
    cfg->in_channels = 3;
    cfg->height = 32;
    cfg->width = 32;
    cfg->num_classes = 10;
    cfg->num_blocks = 3;
    cfg->channels[0] = 64;
    cfg->channels[1] = 128;
    cfg->channels[2] = 256;
    cfg->T = 25;
    cfg->beta = 0.9f;
    cfg->threshold = 1.0f;
    cfg->encoding = SNN_ENCODING_RATE;
    cfg->encoding_gain = 1.0f;
    if (strcmp(name, "simple") == 0) {
        cfg->kind = SNN_MODEL_SIMPLE;
        cfg->dropout = 0.2f;
    } else if (strcmp(name, "vgg") == 0) {
        cfg->kind = SNN_MODEL_VGG;
        cfg->dropout = 0.3f;
    } else {
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_config_default: unknown model name '%s' (expected simple or vgg)", name);
    }
    return SNN_OK;
}

const char *snn_model_kind_name(snn_model_kind kind) {
    switch (kind) {
    case SNN_MODEL_SIMPLE: return "simple";
    case SNN_MODEL_VGG: return "vgg";
    case SNN_MODEL_NETWORK: return "network";
    }
    return "unknown";
}

const char *snn_encoding_name(snn_encoding enc) {
    switch (enc) {
    case SNN_ENCODING_RATE: return "rate";
    case SNN_ENCODING_DIRECT: return "direct";
    case SNN_ENCODING_NONE: return "none";
    }
    return "unknown";
}

snn_status snn_encoding_parse(const char *name, snn_encoding *out) {
    SNN_REQUIRE_ARG("snn_encoding_parse", name);
    SNN_REQUIRE_ARG("snn_encoding_parse", out);
    for (int e = SNN_ENCODING_RATE; e <= SNN_ENCODING_NONE; e++) {
        if (strcmp(name, snn_encoding_name((snn_encoding)e)) == 0) {
            *out = (snn_encoding)e;
            return SNN_OK;
        }
    }
    return snn_fail(SNN_ERR_INVALID_ARG, "snn_encoding_parse: unknown encoding name '%s' (expected rate, direct or none)",
                    name);
}

#define CHECK(cond, ...) \
    if (!(cond)) return snn_fail(SNN_ERR_INVALID_ARG, __VA_ARGS__)

snn_status snn_model_config_check(const snn_model_config *cfg) {
    CHECK(cfg, "model config is NULL");
    CHECK(cfg->kind != SNN_MODEL_NETWORK,
          "kind network: a description's model is made from the description (snn_model_create_network)");
    CHECK(cfg->kind == SNN_MODEL_SIMPLE || cfg->kind == SNN_MODEL_VGG, "unknown model kind %d", (int)cfg->kind);
    CHECK(cfg->in_channels >= 1 && cfg->in_channels <= 65536, "in_channels must be in 1..65536, got %d",
          cfg->in_channels);
    CHECK(cfg->height >= 1 && cfg->width >= 1 && cfg->height <= 16384 && cfg->width <= 16384,
          "height and width must be in 1..16384, got %dx%d", cfg->height, cfg->width);
    CHECK(cfg->num_classes >= 1 && cfg->num_classes <= 1000000, "num_classes must be >= 1, got %d",
          cfg->num_classes);
    CHECK(cfg->T >= 1 && cfg->T <= 100000, "T must be in 1..100000, got %d", cfg->T);
    if (cfg->kind == SNN_MODEL_SIMPLE) {
        CHECK(cfg->num_blocks >= 1 && cfg->num_blocks <= SNN_MAX_BLOCKS,
              "the simple model needs 1..%d channel entries, got %d", SNN_MAX_BLOCKS, cfg->num_blocks);
    } else {
        CHECK(cfg->num_blocks == 3, "the vgg model has 3 blocks, got %d", cfg->num_blocks);
    }
    for (int i = 0; i < cfg->num_blocks; i++)
        CHECK(cfg->channels[i] >= 1 && cfg->channels[i] <= 65536, "channels[%d] must be in 1..65536, got %d",
              i, cfg->channels[i]);
    int pools = cfg->num_blocks;
    CHECK((cfg->height >> pools) >= 1 && (cfg->width >> pools) >= 1,
          "input %dx%d is too small for %d poolings (each halves it, flooring)", cfg->height, cfg->width,
          pools);
    CHECK(isfinite(cfg->beta) && isfinite(cfg->threshold), "beta and threshold must be finite");
    CHECK(cfg->encoding >= SNN_ENCODING_RATE && cfg->encoding <= SNN_ENCODING_NONE,
          "unknown encoding %d", (int)cfg->encoding);
    CHECK(isfinite(cfg->encoding_gain), "encoding_gain must be finite");
    CHECK(cfg->dropout >= 0.0f && cfg->dropout < 1.0f, "dropout must be in [0, 1), got %g",
          (double)cfg->dropout);
    return SNN_OK;
}

/* ------------------------------------------------------- from a model file -- */

snn_status snn_meta_int(const char *key, const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return snn_fail(SNN_ERR_FORMAT, "metadata '%s' = '%s' is not an integer in %d..%d", key, s, lo, hi);
    *out = (int)v;
    return SNN_OK;
}

static snn_status parse_float(const char *key, const char *s, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return snn_fail(SNN_ERR_FORMAT, "metadata '%s' = '%s' is not a finite number", key, s);
    *out = (float)v;
    return SNN_OK;
}

static void format_shape(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

static snn_status tensor_dim(const snn_safetensors *st, const char *name, int ndim, int dim, int *out) {
    const snn_tensor *t = snn_safetensors_find(st, name);
    if (!t) return snn_fail(SNN_ERR_NOT_FOUND, "tensor '%s' is missing", name);
    if (t->ndim != ndim) {
        char s[128];
        format_shape(s, sizeof s, t->ndim, t->shape);
        return snn_fail(SNN_ERR_SHAPE, "tensor '%s' has shape %s, expected %d dimensions", name, s, ndim);
    }
    if (t->shape[dim] < 1 || t->shape[dim] > 1000000)
        return snn_fail(SNN_ERR_SHAPE, "tensor '%s' has an implausible size %lld in dimension %d", name,
                        (long long)t->shape[dim], dim);
    *out = (int)t->shape[dim];
    return SNN_OK;
}

snn_status snn_model_config_from_safetensors(const snn_safetensors *st, snn_model_config *cfg) {
    const char *kind = snn_safetensors_meta_get(st, "model");
    if (!kind) {
        if (snn_safetensors_find(st, "blocks.0.conv.weight")) kind = "simple";
        else if (snn_safetensors_find(st, "fc1.weight")) kind = "vgg";
        else return snn_fail(SNN_ERR_FORMAT, "no 'model' metadata and the tensors match neither simple nor vgg");
    }
    if (strcmp(kind, "network") == 0)
        return snn_fail(SNN_ERR_FORMAT, "metadata 'model' = 'network' but no 'snncl.network' description");
    if (snn_model_config_default(cfg, kind) != SNN_OK)
        return snn_fail(SNN_ERR_FORMAT, "metadata 'model' = '%s' is not simple or vgg", kind);
    const char *h = snn_safetensors_meta_get(st, "height"), *w = snn_safetensors_meta_get(st, "width");
    if (!h || !w)
        return snn_fail(SNN_ERR_FORMAT, "metadata 'height' and 'width' are required (the input size)");
    SNN_TRY(snn_meta_int("height", h, 1, 16384, &cfg->height));
    SNN_TRY(snn_meta_int("width", w, 1, 16384, &cfg->width));
    const char *v;
    if ((v = snn_safetensors_meta_get(st, "T"))) SNN_TRY(snn_meta_int("T", v, 1, 100000, &cfg->T));
    if ((v = snn_safetensors_meta_get(st, "encoding")))
        if (snn_encoding_parse(v, &cfg->encoding) != SNN_OK)
            return snn_fail(SNN_ERR_FORMAT, "metadata 'encoding' = '%s' is not rate, direct or none", v);
    if ((v = snn_safetensors_meta_get(st, "encoding_gain")))
        SNN_TRY(parse_float("encoding_gain", v, &cfg->encoding_gain));
    if ((v = snn_safetensors_meta_get(st, "dropout"))) SNN_TRY(parse_float("dropout", v, &cfg->dropout));

    char name[64];
    const char *first = cfg->kind == SNN_MODEL_SIMPLE ? "blocks.0.conv.weight" : "blocks.0.0.weight";
    SNN_TRY(tensor_dim(st, first, 4, 1, &cfg->in_channels));
    if (cfg->kind == SNN_MODEL_SIMPLE) {
        cfg->num_blocks = 0;
        for (int i = 0; i < SNN_MAX_BLOCKS + 1; i++) {
            snprintf(name, sizeof name, "blocks.%d.conv.weight", i);
            if (!snn_safetensors_find(st, name)) break;
            if (i == SNN_MAX_BLOCKS)
                return snn_fail(SNN_ERR_UNSUPPORTED, "more than %d blocks are not supported", SNN_MAX_BLOCKS);
            SNN_TRY(tensor_dim(st, name, 4, 0, &cfg->channels[i]));
            cfg->num_blocks++;
        }
        SNN_TRY(tensor_dim(st, "fc.weight", 2, 0, &cfg->num_classes));
    } else {
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "blocks.%d.0.weight", i);
            SNN_TRY(tensor_dim(st, name, 4, 0, &cfg->channels[i]));
        }
        SNN_TRY(tensor_dim(st, "fc2.weight", 2, 0, &cfg->num_classes));
    }
    int n = 0;
    if ((v = snn_safetensors_meta_get(st, "in_channels"))) {
        SNN_TRY(snn_meta_int("in_channels", v, 1, 65536, &n));
        if (n != cfg->in_channels)
            return snn_fail(SNN_ERR_SHAPE, "metadata in_channels = %d but %s has %d input channels", n, first,
                            cfg->in_channels);
    }
    if ((v = snn_safetensors_meta_get(st, "num_classes"))) {
        SNN_TRY(snn_meta_int("num_classes", v, 1, 1000000, &n));
        if (n != cfg->num_classes)
            return snn_fail(SNN_ERR_SHAPE, "metadata num_classes = %d but the readout has %d outputs", n,
                            cfg->num_classes);
    }
    return SNN_OK;
}

/* ------------------------------------------------------------------ presets -- */

#define PRESET_TRY(expr)                       \
    do {                                       \
        if ((st = (expr)) != SNN_OK) goto out; \
    } while (0)

snn_status snn_network_preset(snn_network **out, const snn_model_config *cfg) {
    SNN_REQUIRE_ARG("snn_network_preset", out);
    *out = NULL;
    SNN_REQUIRE_ARG("snn_network_preset", cfg);
    snn_status st = snn_model_config_check(cfg);
    if (st != SNN_OK) return snn_fail_context(st, "snn_network_preset: cfg");
    if (cfg->kind != SNN_MODEL_SIMPLE && cfg->kind != SNN_MODEL_VGG)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_network_preset: cfg names no preset (kind %s)",
                        snn_model_kind_name(cfg->kind));
    snn_network *n;
    SNN_TRY(snn_network_create(&n, cfg->in_channels, cfg->height, cfg->width, cfg->num_classes, cfg->T));
    n->encoding = cfg->encoding;
    n->gain = cfg->encoding_gain;
    n->preset = (int)cfg->kind;
    snn_layer_desc conv, bn, lif, pool, flat, fc, drop;
    snn_layer_desc_default(&conv, SNN_LAYER_CONV2D);
    conv.kernel_size = 3;
    conv.padding = 1;
    conv.bias = 0;
    snn_layer_desc_default(&bn, SNN_LAYER_BATCHNORM2D);
    snn_layer_desc_default(&lif, SNN_LAYER_LEAKY);
    lif.beta = cfg->beta;
    lif.threshold = cfg->threshold;
    lif.surrogate = SNN_SURROGATE_FAST_SIGMOID;
    lif.surrogate_param = 25.0f;
    snn_layer_desc_default(&pool, SNN_LAYER_AVGPOOL2D);
    pool.kernel_size = 2;
    snn_layer_desc_default(&flat, SNN_LAYER_FLATTEN);
    snn_layer_desc_default(&fc, SNN_LAYER_LINEAR);
    snn_layer_desc_default(&drop, SNN_LAYER_DROPOUT);
    drop.p = cfg->dropout;
    char name[48];
    const snn_network_part L = SNN_NET_LAYERS;
    /* The seed's state_dict names (its SimpleSNN and VGGSNN modules). */
    if (cfg->kind == SNN_MODEL_SIMPLE) {
        for (int b = 0; b < cfg->num_blocks; b++) {
            conv.out = cfg->channels[b];
            snprintf(name, sizeof name, "blocks.%d.conv", b);
            PRESET_TRY(snn_network_append(n, L, &conv, name));
            snprintf(name, sizeof name, "blocks.%d.bn", b);
            PRESET_TRY(snn_network_append(n, L, &bn, name));
            snprintf(name, sizeof name, "blocks.%d.lif", b);
            PRESET_TRY(snn_network_append(n, L, &lif, name));
            PRESET_TRY(snn_network_append(n, L, &pool, "-"));
        }
        PRESET_TRY(snn_network_append(n, L, &flat, "-"));
        fc.out = cfg->num_classes;
    } else {
        for (int b = 0; b < cfg->num_blocks; b++)
            for (int j = 0; j < 2; j++) {
                conv.out = cfg->channels[b];
                snprintf(name, sizeof name, "blocks.%d.%d", b, 2 * j);
                PRESET_TRY(snn_network_append(n, L, &conv, name));
                snprintf(name, sizeof name, "blocks.%d.%d", b, 2 * j + 1);
                PRESET_TRY(snn_network_append(n, L, &bn, name));
                snprintf(name, sizeof name, "lifs.%d", 2 * b + j);
                PRESET_TRY(snn_network_append(n, L, &lif, name));
                n->part[L][n->count[L] - 1].param_rank = 1; /* the seed's ModuleList after its blocks */
                if (j == 1) PRESET_TRY(snn_network_append(n, L, &pool, "-"));
            }
        PRESET_TRY(snn_network_append(n, L, &flat, "-"));
        fc.out = 512; /* the seed's hidden dense layer */
        PRESET_TRY(snn_network_append(n, L, &fc, "fc1"));
        PRESET_TRY(snn_network_append(n, L, &lif, "lif_fc"));
        n->part[L][n->count[L] - 2].param_rank = n->part[L][n->count[L] - 1].param_rank = 2;
        fc.out = cfg->num_classes;
    }
    PRESET_TRY(snn_network_append(n, SNN_NET_READOUT, &drop, "-"));
    PRESET_TRY(snn_network_append(n, SNN_NET_READOUT, &fc, cfg->kind == SNN_MODEL_SIMPLE ? "fc" : "fc2"));
    PRESET_TRY(snn_network_infer(n));
out:
    if (st != SNN_OK) {
        snn_network_free(n);
        return st;
    }
    *out = n;
    return SNN_OK;
}
