/* Model structure, parameter table (state_dict order and names), initialization
 * as in the seed, and device copies. */
#include "model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

static snn_param *add_param(snn_model *m, snn_dtype dtype, int optional, int ndim,
                            const int64_t *shape, const char *fmt, ...) SNN_PRINTF(6, 7);

static snn_param *add_param(snn_model *m, snn_dtype dtype, int optional, int ndim,
                            const int64_t *shape, const char *fmt, ...) {
    if (m->num_params == SNN_MAX_PARAMS) return NULL;
    snn_param *p = &m->params[m->num_params];
    memset(p, 0, sizeof *p);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->dtype = dtype;
    p->optional = optional;
    p->ndim = ndim;
    p->count = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->count *= (size_t)shape[i];
    }
    if (dtype == SNN_F32) {
        p->host = calloc(p->count ? p->count : 1, sizeof(float));
        if (!p->host) return NULL;
    }
    m->num_params++;
    return p;
}

snn_param *snn_model_param(snn_model *model, const char *name) {
    for (int i = 0; i < model->num_params; i++)
        if (strcmp(model->params[i].name, name) == 0) return &model->params[i];
    return NULL;
}

#define ADD(dst, ...)                                                                 \
    do {                                                                              \
        if (!((dst) = add_param(m, __VA_ARGS__)))                                     \
            return snn_fail(SNN_ERR_OUT_OF_MEMORY, "model parameters: out of memory"); \
    } while (0)

/* BatchNorm2d tensors in state_dict order, under `prefix`. */
static snn_status add_bn(snn_model *m, snn_conv_layer *c, const char *prefix) {
    int64_t n[1] = {(int64_t)c->cout};
    ADD(c->bn_weight, SNN_F32, 0, 1, n, "%s.weight", prefix);
    ADD(c->bn_bias, SNN_F32, 0, 1, n, "%s.bias", prefix);
    ADD(c->bn_mean, SNN_F32, 0, 1, n, "%s.running_mean", prefix);
    ADD(c->bn_var, SNN_F32, 0, 1, n, "%s.running_var", prefix);
    ADD(c->bn_count, SNN_I64, 1, 0, NULL, "%s.num_batches_tracked", prefix);
    return SNN_OK;
}

/* snnTorch Leaky buffers in state_dict order. */
static snn_status add_lif(snn_model *m, snn_lif_layer *l, const char *prefix) {
    ADD(l->threshold, SNN_F32, 0, 0, NULL, "%s.threshold", prefix);
    ADD(l->graded, SNN_F32, 1, 0, NULL, "%s.graded_spikes_factor", prefix);
    ADD(l->reset_mechanism, SNN_I64, 1, 0, NULL, "%s.reset_mechanism_val", prefix);
    ADD(l->beta, SNN_F32, 0, 0, NULL, "%s.beta", prefix);
    return SNN_OK;
}

static snn_status add_linear(snn_model *m, snn_param **w, snn_param **b, size_t fin, size_t fout,
                             const char *prefix) {
    int64_t ws[2] = {(int64_t)fout, (int64_t)fin}, bs[1] = {(int64_t)fout};
    ADD(*w, SNN_F32, 0, 2, ws, "%s.weight", prefix);
    ADD(*b, SNN_F32, 0, 1, bs, "%s.bias", prefix);
    return SNN_OK;
}

static snn_status add_conv(snn_model *m, snn_conv_layer *c, const char *name) {
    int64_t s[4] = {(int64_t)c->cout, (int64_t)c->cin, 3, 3};
    ADD(c->weight, SNN_F32, 0, 4, s, "%s", name);
    return SNN_OK;
}

static snn_status build_layers(snn_model *m) {
    const snn_model_config *cfg = &m->cfg;
    size_t cin = (size_t)cfg->in_channels, H = (size_t)cfg->height, W = (size_t)cfg->width;
    char name[64];
    int convs_per_block = cfg->kind == SNN_MODEL_VGG ? 2 : 1;
    for (int blk = 0; blk < cfg->num_blocks; blk++) {
        for (int j = 0; j < convs_per_block; j++) {
            snn_conv_layer *c = &m->conv[m->num_convs];
            c->cin = cin;
            c->cout = (size_t)cfg->channels[blk];
            c->H = H;
            c->W = W;
            c->pool = j == convs_per_block - 1;
            if (cfg->kind == SNN_MODEL_SIMPLE) {
                snprintf(name, sizeof name, "blocks.%d.conv.weight", blk);
                SNN_TRY(add_conv(m, c, name));
                snprintf(name, sizeof name, "blocks.%d.bn", blk);
                SNN_TRY(add_bn(m, c, name));
                snprintf(name, sizeof name, "blocks.%d.lif", blk);
                SNN_TRY(add_lif(m, &m->lif[m->num_convs], name));
            } else {
                snprintf(name, sizeof name, "blocks.%d.%d.weight", blk, 2 * j);
                SNN_TRY(add_conv(m, c, name));
                snprintf(name, sizeof name, "blocks.%d.%d", blk, 2 * j + 1);
                SNN_TRY(add_bn(m, c, name));
            }
            cin = c->cout;
            m->num_convs++;
        }
        H /= 2;
        W /= 2;
    }
    m->out_h = H;
    m->out_w = W;
    m->features = cin * H * W;
    m->num_lifs = m->num_convs;
    if (cfg->kind == SNN_MODEL_SIMPLE) {
        SNN_TRY(add_linear(m, &m->fc_w, &m->fc_b, m->features, (size_t)cfg->num_classes, "fc"));
    } else {
        for (int i = 0; i < m->num_convs; i++) {
            snprintf(name, sizeof name, "lifs.%d", i);
            SNN_TRY(add_lif(m, &m->lif[i], name));
        }
        SNN_TRY(add_linear(m, &m->fc1_w, &m->fc1_b, m->features, SNN_VGG_HIDDEN, "fc1"));
        SNN_TRY(add_lif(m, &m->lif[m->num_lifs], "lif_fc"));
        m->num_lifs++;
        SNN_TRY(add_linear(m, &m->fc_w, &m->fc_b, SNN_VGG_HIDDEN, (size_t)cfg->num_classes, "fc2"));
    }
    return SNN_OK;
}

snn_status snn_model_build(snn_model **out, snn_context *ctx, const snn_model_config *cfg) {
    SNN_TRY(snn_model_config_check(cfg));
    snn_model *m = calloc(1, sizeof *m);
    if (!m) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "model");
    m->ctx = ctx;
    m->cfg = *cfg;
    m->fwd.ws.limit = (size_t)64 << 20;
    snn_status st = build_layers(m);
    if (st != SNN_OK) {
        snn_model_free(m);
        return st;
    }
    /* The neutral values of each table entry; loading or init overwrites them. */
    for (int i = 0; i < m->num_convs; i++) {
        snn_conv_layer *c = &m->conv[i];
        for (size_t k = 0; k < c->cout; k++) {
            c->bn_weight->host[k] = 1.0f;
            c->bn_var->host[k] = 1.0f;
        }
    }
    for (int i = 0; i < m->num_lifs; i++) {
        m->lif[i].beta->host[0] = cfg->beta;
        m->lif[i].threshold->host[0] = cfg->threshold;
        m->lif[i].graded->host[0] = 1.0f;
    }
    *out = m;
    return SNN_OK;
}

/* The seed's _init_weights: Kaiming-normal (fan_out, gain sqrt(2)) convolutions,
 * Xavier-uniform linear weights, zero biases. */
static void init_weights(snn_model *m, uint64_t seed) {
    snn_rng rng;
    snn_rng_init(&rng, seed, 0x1417u);
    for (int i = 0; i < m->num_convs; i++) {
        snn_param *w = m->conv[i].weight;
        double std = sqrt(2.0 / (double)(m->conv[i].cout * 9));
        for (size_t k = 0; k < w->count; k++) w->host[k] = (float)(std * snn_rng_normal(&rng));
    }
    snn_param *linear[2] = {m->fc1_w, m->fc_w};
    for (int i = 0; i < 2; i++) {
        snn_param *w = linear[i];
        if (!w) continue;
        double bound = sqrt(6.0 / (double)(w->shape[0] + w->shape[1]));
        for (size_t k = 0; k < w->count; k++)
            w->host[k] = (float)(bound * (2.0 * snn_rng_uniform(&rng) - 1.0));
    }
}

snn_status snn_model_create(snn_model **out, snn_context *ctx, const snn_model_config *cfg,
                            uint64_t init_seed) {
    SNN_REQUIRE_ARG("snn_model_create", out);
    *out = NULL;
    SNN_REQUIRE_ARG("snn_model_create", ctx);
    SNN_REQUIRE_ARG("snn_model_create", cfg);
    snn_model *m;
    snn_status built = snn_model_build(&m, ctx, cfg);
    if (built == SNN_ERR_INVALID_ARG) return snn_fail_context(built, "snn_model_create: cfg");
    SNN_TRY(built);
    init_weights(m, init_seed);
    snn_status st = snn_model_upload(m);
    if (st != SNN_OK) {
        snn_model_free(m);
        return st;
    }
    *out = m;
    return SNN_OK;
}

static snn_status upload_param(snn_model *m, snn_param *p) {
    if (!p->dev) SNN_TRY(snn_buffer_create(m->ctx, p->count * sizeof(float), &p->dev));
    return snn_buffer_write(m->ctx, p->dev, 0, p->count * sizeof(float), p->host);
}

snn_status snn_model_upload(snn_model *m) {
    snn_context *ctx = m->ctx;
    for (int i = 0; i < m->num_convs; i++) {
        snn_conv_layer *c = &m->conv[i];
        SNN_TRY(upload_param(m, c->weight));
        /* BatchNorm tensors too: training updates them on the device. */
        SNN_TRY(upload_param(m, c->bn_weight));
        SNN_TRY(upload_param(m, c->bn_bias));
        SNN_TRY(upload_param(m, c->bn_mean));
        SNN_TRY(upload_param(m, c->bn_var));
        float *fold = malloc(2 * c->cout * sizeof(float));
        if (!fold) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "BatchNorm folding");
        /* Folded in double: y = gamma*(x - mean)/sqrt(var + 1e-5) + beta. */
        for (size_t k = 0; k < c->cout; k++) {
            double scale = (double)c->bn_weight->host[k] / sqrt((double)c->bn_var->host[k] + 1e-5);
            fold[k] = (float)scale;
            fold[c->cout + k] = (float)((double)c->bn_bias->host[k] - (double)c->bn_mean->host[k] * scale);
        }
        snn_status st = SNN_OK;
        if (!c->scale) st = snn_buffer_create(ctx, c->cout * sizeof(float), &c->scale);
        if (st == SNN_OK && !c->shift) st = snn_buffer_create(ctx, c->cout * sizeof(float), &c->shift);
        if (st == SNN_OK) st = snn_buffer_write(ctx, c->scale, 0, c->cout * sizeof(float), fold);
        if (st == SNN_OK) st = snn_buffer_write(ctx, c->shift, 0, c->cout * sizeof(float), fold + c->cout);
        free(fold);
        SNN_TRY(st);
    }
    SNN_TRY(upload_param(m, m->fc_w));
    SNN_TRY(upload_param(m, m->fc_b));
    if (m->fc1_w) {
        SNN_TRY(upload_param(m, m->fc1_w));
        SNN_TRY(upload_param(m, m->fc1_b));
    }
    if (!m->ones) {
        const float one = 1.0f, zero = 0.0f;
        SNN_TRY(snn_buffer_create(ctx, sizeof(float), &m->ones));
        SNN_TRY(snn_buffer_create(ctx, sizeof(float), &m->zeros));
        SNN_TRY(snn_buffer_write(ctx, m->ones, 0, sizeof one, &one));
        SNN_TRY(snn_buffer_write(ctx, m->zeros, 0, sizeof zero, &zero));
    }
    return SNN_OK;
}

snn_status snn_model_sync_host(snn_model *m) {
    if (!m->device_newer) return SNN_OK;
    for (int i = 0; i < m->num_params; i++) {
        snn_param *p = &m->params[i];
        if (p->dtype == SNN_F32 && p->dev)
            SNN_TRY(snn_buffer_read(m->ctx, p->dev, 0, p->count * sizeof(float), p->host));
    }
    m->device_newer = 0;
    return snn_model_upload(m);
}

float snn_model_lif_beta(const snn_model *m, int l) {
    return fminf(fmaxf(m->lif[l].beta->host[0], 0.0f), 1.0f); /* snnTorch clamps beta */
}

float snn_model_lif_threshold(const snn_model *m, int l) { return m->lif[l].threshold->host[0]; }

static void release_forward_buffers(snn_forward_buffers *f) {
    cl_mem *all[] = {&f->input, &f->act, &f->conv, &f->spk, &f->cur0, &f->sum,
                     &f->logits, &f->sq, &f->lambda, &f->perturb};
    for (size_t i = 0; i < SNN_ARRAY_LEN(all); i++) snn_buffer_release(all[i]);
    for (int i = 0; i < SNN_MAX_LIFS; i++) {
        snn_buffer_release(&f->mem[i]);
        snn_buffer_release(&f->delta[i]);
    }
    snn_workspace_release(&f->ws);
    snn_conv_diff_release(&f->diff);
}

void snn_model_free(snn_model *m) {
    if (!m) return;
    if (m->ctx) clFinish(m->ctx->queue);
    for (int i = 0; i < m->num_params; i++) {
        free(m->params[i].host);
        snn_buffer_release(&m->params[i].dev);
    }
    for (int i = 0; i < m->num_convs; i++) {
        snn_buffer_release(&m->conv[i].scale);
        snn_buffer_release(&m->conv[i].shift);
    }
    snn_buffer_release(&m->ones);
    snn_buffer_release(&m->zeros);
    release_forward_buffers(&m->fwd);
    free(m);
}

snn_status snn_model_get_config(const snn_model *model, snn_model_config *cfg) {
    SNN_REQUIRE_ARG("snn_model_get_config", model);
    SNN_REQUIRE_ARG("snn_model_get_config", cfg);
    *cfg = model->cfg;
    return SNN_OK;
}

int snn_model_num_lif_layers(const snn_model *model) { return model ? model->num_lifs : 0; }

snn_status snn_model_lif_shape(const snn_model *model, int layer, int batch, int *ndim, int64_t shape[4]) {
    SNN_REQUIRE_ARG("snn_model_lif_shape", model);
    SNN_REQUIRE_ARG("snn_model_lif_shape", ndim);
    SNN_REQUIRE_ARG("snn_model_lif_shape", shape);
    if (layer < 0 || layer >= model->num_lifs)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_lif_shape: layer %d out of range (the model has %d LIF layers)",
                        layer, model->num_lifs);
    if (batch < 1)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_lif_shape: batch must be >= 1, got %d", batch);
    if (layer < model->num_convs) {
        const snn_conv_layer *c = &model->conv[layer];
        *ndim = 4;
        shape[0] = batch;
        shape[1] = (int64_t)c->cout;
        shape[2] = (int64_t)c->H;
        shape[3] = (int64_t)c->W;
    } else {
        *ndim = 2;
        shape[0] = batch;
        shape[1] = SNN_VGG_HIDDEN;
    }
    return SNN_OK;
}
