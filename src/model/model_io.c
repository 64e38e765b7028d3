/* Models to and from safetensors: PyTorch state_dict names plus SPEC metadata. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static snn_status parse_int(const char *key, const char *s, int lo, int hi, int *out) {
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

/* The config from metadata, with channels and class count read off the tensors. */
static snn_status config_from_file(const snn_safetensors *st, snn_model_config *cfg) {
    const char *kind = snn_safetensors_meta_get(st, "model");
    if (!kind) {
        if (snn_safetensors_find(st, "blocks.0.conv.weight")) kind = "simple";
        else if (snn_safetensors_find(st, "fc1.weight")) kind = "vgg";
        else return snn_fail(SNN_ERR_FORMAT, "no 'model' metadata and the tensors match neither simple nor vgg");
    }
    if (snn_model_config_default(cfg, kind) != SNN_OK)
        return snn_fail(SNN_ERR_FORMAT, "metadata 'model' = '%s' is not simple or vgg", kind);
    const char *h = snn_safetensors_meta_get(st, "height"), *w = snn_safetensors_meta_get(st, "width");
    if (!h || !w)
        return snn_fail(SNN_ERR_FORMAT, "metadata 'height' and 'width' are required (the input size)");
    SNN_TRY(parse_int("height", h, 1, 16384, &cfg->height));
    SNN_TRY(parse_int("width", w, 1, 16384, &cfg->width));
    const char *v;
    if ((v = snn_safetensors_meta_get(st, "T"))) SNN_TRY(parse_int("T", v, 1, 100000, &cfg->T));
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
        SNN_TRY(parse_int("in_channels", v, 1, 65536, &n));
        if (n != cfg->in_channels)
            return snn_fail(SNN_ERR_SHAPE, "metadata in_channels = %d but %s has %d input channels", n, first,
                            cfg->in_channels);
    }
    if ((v = snn_safetensors_meta_get(st, "num_classes"))) {
        SNN_TRY(parse_int("num_classes", v, 1, 1000000, &n));
        if (n != cfg->num_classes)
            return snn_fail(SNN_ERR_SHAPE, "metadata num_classes = %d but the readout has %d outputs", n,
                            cfg->num_classes);
    }
    return SNN_OK;
}

static snn_status read_param(const snn_safetensors *st, snn_param *p) {
    const snn_tensor *t = snn_safetensors_find(st, p->name);
    if (!t) {
        if (p->optional) return SNN_OK;
        return snn_fail(SNN_ERR_NOT_FOUND, "tensor '%s' is missing", p->name);
    }
    /* snnTorch scalars are 0-dimensional; a 1-element vector is accepted too. */
    int scalar_ok = p->ndim == 0 && t->ndim == 1 && t->shape[0] == 1;
    if (p->dtype == SNN_I64) {
        if (!(t->ndim == 0 || scalar_ok))
            return snn_fail(SNN_ERR_SHAPE, "tensor '%s' should be a scalar", p->name);
        if (t->dtype == SNN_I64) memcpy(&p->i64, t->data, sizeof p->i64);
        else {
            float f;
            SNN_TRY(snn_safetensors_get_f32(st, p->name, -1, NULL, &f));
            p->i64 = (int64_t)f;
        }
        return SNN_OK;
    }
    if (t->dtype == SNN_I64)
        return snn_fail(SNN_ERR_FORMAT, "tensor '%s' is I64, expected F32 or F64", p->name);
    SNN_TRY(snn_safetensors_get_f32(st, p->name, scalar_ok ? -1 : p->ndim, p->shape, p->host));
    for (size_t i = 0; i < p->count; i++)
        if (!isfinite(p->host[i]))
            return snn_fail(SNN_ERR_FORMAT, "tensor '%s' holds a non-finite value at index %zu", p->name, i);
    return SNN_OK;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static snn_status check_loaded(snn_model *m, const snn_safetensors *st) {
    for (size_t i = 0; i < snn_safetensors_count(st); i++) {
        const char *name = snn_safetensors_at(st, i)->name;
        /* snnTorch membrane buffers and a checkpoint's optimizer state are not model tensors. */
        if (!snn_model_param(m, name) && !ends_with(name, ".mem") && strncmp(name, "optim.", 6) != 0)
            return snn_fail(SNN_ERR_FORMAT, "unexpected tensor '%s' for a %s model with %d blocks", name,
                            snn_model_kind_name(m->cfg.kind), m->cfg.num_blocks);
    }
    for (int l = 0; l < m->num_lifs; l++) {
        const snn_lif_layer *lif = &m->lif[l];
        if (lif->graded->host[0] != 1.0f)
            return snn_fail(SNN_ERR_UNSUPPORTED, "'%s' = %g: only graded_spikes_factor 1 is supported",
                            lif->graded->name, (double)lif->graded->host[0]);
        if (lif->reset_mechanism->i64 != 0)
            return snn_fail(SNN_ERR_UNSUPPORTED, "'%s' = %lld: only reset by subtraction (0) is supported",
                            lif->reset_mechanism->name, (long long)lif->reset_mechanism->i64);
    }
    for (int i = 0; i < m->num_convs; i++) {
        const snn_param *var = m->conv[i].bn_var;
        for (size_t k = 0; k < var->count; k++)
            if (var->host[k] < 0.0f)
                return snn_fail(SNN_ERR_FORMAT, "'%s' has a negative variance at index %zu", var->name, k);
    }
    return SNN_OK;
}

snn_status snn_model_from_safetensors(snn_model **out, snn_context *ctx, const snn_safetensors *st) {
    if (!out || !ctx || !st) return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_from_safetensors: NULL argument");
    *out = NULL;
    snn_model_config cfg;
    SNN_TRY(config_from_file(st, &cfg));
    snn_model *m;
    snn_status s = snn_model_build(&m, ctx, &cfg);
    if (s == SNN_ERR_INVALID_ARG) return snn_fail_context(SNN_ERR_FORMAT, "the file's model configuration");
    SNN_TRY(s);
    for (int i = 0; i < m->num_params && s == SNN_OK; i++) s = read_param(st, &m->params[i]);
    if (s == SNN_OK) s = check_loaded(m, st);
    if (s == SNN_OK) {
        m->cfg.beta = m->lif[0].beta->host[0];
        m->cfg.threshold = m->lif[0].threshold->host[0];
        s = snn_model_upload(m);
    }
    if (s != SNN_OK) {
        snn_model_free(m);
        return s;
    }
    *out = m;
    return SNN_OK;
}

snn_status snn_model_load(snn_model **out, snn_context *ctx, const char *path) {
    if (!out || !ctx || !path) return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_load: NULL argument");
    *out = NULL;
    snn_safetensors *st;
    SNN_TRY(snn_safetensors_read(&st, path));
    snn_status s = snn_model_from_safetensors(out, ctx, st);
    snn_safetensors_free(st);
    if (s != SNN_OK) return snn_fail_context(s, "%s", path);
    return SNN_OK;
}

snn_status snn_model_to_safetensors(const snn_model *m, snn_safetensors **out) {
    if (!m || !out) return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_to_safetensors: NULL argument");
    *out = NULL;
    /* The host tables are a cache of the device copies while a trainer works on them. */
    SNN_TRY(snn_model_sync_host((snn_model *)m));
    snn_safetensors *st;
    SNN_TRY(snn_safetensors_create(&st));
    snn_status s = SNN_OK;
    for (int i = 0; i < m->num_params && s == SNN_OK; i++) {
        const snn_param *p = &m->params[i];
        if (p->dtype == SNN_I64) s = snn_safetensors_add(st, p->name, SNN_I64, 0, NULL, &p->i64);
        else s = snn_safetensors_add(st, p->name, SNN_F32, p->ndim, p->shape, p->host);
    }
    const snn_model_config *c = &m->cfg;
    char buf[64];
#define META(key, ...)                                                  \
    if (s == SNN_OK) {                                                  \
        snprintf(buf, sizeof buf, __VA_ARGS__);                         \
        s = snn_safetensors_meta_set(st, key, buf);                     \
    }
    META("format", "pt");
    META("model", "%s", snn_model_kind_name(c->kind));
    META("T", "%d", c->T);
    META("encoding", "%s", snn_encoding_name(c->encoding));
    META("encoding_gain", "%.9g", (double)c->encoding_gain);
    META("dropout", "%.9g", (double)c->dropout);
    META("in_channels", "%d", c->in_channels);
    META("height", "%d", c->height);
    META("width", "%d", c->width);
    META("num_classes", "%d", c->num_classes);
#undef META
    if (s != SNN_OK) {
        snn_safetensors_free(st);
        return s;
    }
    *out = st;
    return SNN_OK;
}

snn_status snn_model_save(const snn_model *m, const char *path) {
    if (!m || !path) return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_save: NULL argument");
    snn_safetensors *st;
    SNN_TRY(snn_model_to_safetensors(m, &st));
    snn_status s = snn_safetensors_write(st, path);
    snn_safetensors_free(st);
    return s;
}
