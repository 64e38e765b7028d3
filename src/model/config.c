/* Model configurations: the seed's defaults, names, and validation. */
#include <math.h>
#include <string.h>

#include "model.h"

snn_status snn_model_config_default(snn_model_config *cfg, const char *name) {
    if (!cfg || !name) return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_config_default: NULL argument");
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
        return snn_fail(SNN_ERR_INVALID_ARG, "unknown model '%s' (expected simple or vgg)", name);
    }
    return SNN_OK;
}

const char *snn_model_kind_name(snn_model_kind kind) {
    switch (kind) {
    case SNN_MODEL_SIMPLE: return "simple";
    case SNN_MODEL_VGG: return "vgg";
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
    if (!name || !out) return snn_fail(SNN_ERR_INVALID_ARG, "snn_encoding_parse: NULL argument");
    for (int e = SNN_ENCODING_RATE; e <= SNN_ENCODING_NONE; e++) {
        if (strcmp(name, snn_encoding_name((snn_encoding)e)) == 0) {
            *out = (snn_encoding)e;
            return SNN_OK;
        }
    }
    return snn_fail(SNN_ERR_INVALID_ARG, "unknown encoding '%s' (expected rate, direct or none)", name);
}

#define CHECK(cond, ...) \
    if (!(cond)) return snn_fail(SNN_ERR_INVALID_ARG, __VA_ARGS__)

snn_status snn_model_config_check(const snn_model_config *cfg) {
    CHECK(cfg, "model config is NULL");
    CHECK(cfg->kind == SNN_MODEL_SIMPLE || cfg->kind == SNN_MODEL_VGG, "unknown model kind %d",
          (int)cfg->kind);
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
