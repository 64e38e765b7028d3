/* Models to and from safetensors: PyTorch state_dict names plus SPEC metadata. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

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
            /* A float outside int64's range (or NaN) has no integer value: the cast would
             * be undefined behaviour. 2^63 is exact in float; the range is half-open. */
            if (!(f >= -9223372036854775808.0f && f < 9223372036854775808.0f))
                return snn_fail(SNN_ERR_FORMAT, "tensor '%s' holds %g, not an integer count", p->name, (double)f);
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
            return snn_fail(SNN_ERR_FORMAT, "unexpected tensor '%s' for this %s model (%d parameter tensors, "
                            "the first '%s')", name, snn_model_kind_name(m->cfg.kind), m->num_params,
                            m->params[0].name);
    }
    for (int l = 0; l < m->num_layers; l++) {
        const snn_lif_params *lif = &m->layer[l].lif;
        if (lif->graded->host[0] != 1.0f)
            return snn_fail(SNN_ERR_UNSUPPORTED, "'%s' = %g: only graded_spikes_factor 1 is supported",
                            lif->graded->name, (double)lif->graded->host[0]);
        if (lif->reset_mechanism->i64 != (int64_t)m->layer[l].reset)
            return snn_fail(SNN_ERR_FORMAT, "'%s' = %lld, but the description's reset_mechanism is %u (0 subtract, "
                            "1 zero, 2 none)", lif->reset_mechanism->name, (long long)lif->reset_mechanism->i64,
                            m->layer[l].reset);
    }
    for (int i = 0; i < m->num_layers; i++) {
        const snn_param *var = m->layer[i].bn_var;
        for (size_t k = 0; var && k < var->count; k++)
            if (var->host[k] < 0.0f)
                return snn_fail(SNN_ERR_FORMAT, "'%s' has a negative variance at index %zu", var->name, k);
    }
    return SNN_OK;
}

snn_status snn_model_from_safetensors(snn_model **out, snn_context *ctx, const snn_safetensors *st) {
    SNN_REQUIRE_ARG("snn_model_from_safetensors", out);
    *out = NULL;
    SNN_REQUIRE_ARG("snn_model_from_safetensors", ctx);
    SNN_REQUIRE_ARG("snn_model_from_safetensors", st);
    snn_model *m;
    snn_status s;
    const char *json = snn_safetensors_meta_get(st, SNN_NETWORK_META);
    if (json) {
        /* A description's model (written by snncl or by PyTorch with the description). */
        snn_network *net;
        s = snn_network_parse(&net, json);
        if (s != SNN_OK) return snn_fail_context(SNN_ERR_FORMAT, "metadata '%s'", SNN_NETWORK_META);
        /* The file's "T", where present, wins: the same parameters run over any number
         * of steps (snncl writes both; a file from PyTorch may have the description only). */
        const char *T = snn_safetensors_meta_get(st, "T");
        if (T) s = snn_meta_int("T", T, 1, 100000, &net->T);
        if (s == SNN_OK) s = snn_model_build_network(&m, ctx, net);
        snn_network_free(net);
        if (s != SNN_OK) return snn_fail_context(s, "metadata '%s'", SNN_NETWORK_META);
    } else {
        snn_model_config cfg;
        SNN_TRY(snn_model_config_from_safetensors(st, &cfg));
        s = snn_model_build(&m, ctx, &cfg);
        if (s == SNN_ERR_INVALID_ARG) return snn_fail_context(SNN_ERR_FORMAT, "the file's model configuration");
        SNN_TRY(s);
    }
    for (int i = 0; i < m->num_params && s == SNN_OK; i++) s = read_param(st, &m->params[i]);
    if (s == SNN_OK) s = check_loaded(m, st);
    if (s == SNN_OK) {
        m->cfg.beta = m->layer[0].lif.beta->host[0];
        m->cfg.threshold = m->layer[0].lif.threshold->host[0];
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
    SNN_REQUIRE_ARG("snn_model_load", out);
    *out = NULL;
    SNN_REQUIRE_ARG("snn_model_load", ctx);
    SNN_REQUIRE_ARG("snn_model_load", path);
    snn_safetensors *st;
    SNN_TRY(snn_safetensors_read(&st, path));
    snn_status s = snn_model_from_safetensors(out, ctx, st);
    snn_safetensors_free(st);
    if (s != SNN_OK) return snn_fail_context(s, "%s", path);
    return SNN_OK;
}

snn_status snn_model_load_memory(snn_model **out, snn_context *ctx, const char *name, const void *bytes,
                                 size_t size) {
    SNN_REQUIRE_ARG("snn_model_load_memory", out);
    *out = NULL;
    SNN_REQUIRE_ARG("snn_model_load_memory", ctx);
    SNN_REQUIRE_ARG("snn_model_load_memory", name);
    snn_safetensors *st;
    SNN_TRY(snn_safetensors_read_memory(&st, name, bytes, size));
    snn_status s = snn_model_from_safetensors(out, ctx, st);
    snn_safetensors_free(st);
    if (s != SNN_OK) return snn_fail_context(s, "%s", name);
    return SNN_OK;
}

snn_status snn_model_to_safetensors(const snn_model *m, snn_safetensors **out) {
    SNN_REQUIRE_ARG("snn_model_to_safetensors", out);
    *out = NULL;
    if (!m) return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_to_safetensors: model is NULL");
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
    if (s == SNN_OK && c->kind == SNN_MODEL_NETWORK) {
        snn_network *net = NULL;
        char *json = NULL;
        s = snn_model_network(m, &net);
        if (s == SNN_OK) s = snn_network_json_alloc(net, &json);
        if (s == SNN_OK) s = snn_safetensors_meta_set(st, SNN_NETWORK_META, json);
        free(json);
        snn_network_free(net);
    }
    if (s != SNN_OK) {
        snn_safetensors_free(st);
        return s;
    }
    *out = st;
    return SNN_OK;
}

snn_status snn_model_save(const snn_model *m, const char *path) {
    if (!m) return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_save: model is NULL");
    SNN_REQUIRE_ARG("snn_model_save", path);
    snn_safetensors *st;
    SNN_TRY(snn_model_to_safetensors(m, &st));
    snn_status s = snn_safetensors_write(st, path);
    snn_safetensors_free(st);
    return s;
}
