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
static snn_status add_bn(snn_model *m, snn_layer *c, const char *prefix) {
    int64_t n[1] = {(int64_t)c->cout};
    ADD(c->bn_weight, SNN_F32, 0, 1, n, "%s.weight", prefix);
    ADD(c->bn_bias, SNN_F32, 0, 1, n, "%s.bias", prefix);
    ADD(c->bn_mean, SNN_F32, 0, 1, n, "%s.running_mean", prefix);
    ADD(c->bn_var, SNN_F32, 0, 1, n, "%s.running_var", prefix);
    ADD(c->bn_count, SNN_I64, 1, 0, NULL, "%s.num_batches_tracked", prefix);
    return SNN_OK;
}

/* snnTorch Leaky buffers in state_dict order. */
static snn_status add_lif(snn_model *m, snn_lif_params *l, const char *prefix) {
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

static snn_status add_conv_weight(snn_model *m, snn_layer *c, const char *name) {
    int64_t s[4] = {(int64_t)c->cout, (int64_t)c->cin, 3, 3};
    ADD(c->weight, SNN_F32, 0, 4, s, "%s", name);
    return SNN_OK;
}

/* ---------------------------------------------------------- the layer plan -- *
 * Layers are appended in execution order; each takes its input's shape from the one
 * before (the config's image for the first). Parameters are added separately, in the
 * order and under the names of the seed's state_dict. */

static snn_layer *append_layer(snn_model *m, snn_layer_kind kind) {
    if (m->num_layers == SNN_MAX_LAYERS) return NULL;
    snn_layer *l = &m->layer[m->num_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    return l;
}

/* The shape of what the last layer hands on per image: C channels of H x W. */
static void current_output(const snn_model *m, size_t *C, size_t *H, size_t *W) {
    if (m->num_layers == 0) {
        *C = (size_t)m->cfg.in_channels;
        *H = (size_t)m->cfg.height;
        *W = (size_t)m->cfg.width;
        return;
    }
    const snn_layer *p = &m->layer[m->num_layers - 1];
    if (p->kind == SNN_LAYER_DENSE) {
        *C = 1;
        *H = 1;
        *W = p->cout;
    } else {
        *C = p->cout;
        *H = p->pool ? p->H / 2 : p->H;
        *W = p->pool ? p->W / 2 : p->W;
    }
}

static snn_layer *append_conv(snn_model *m, size_t cout, int pool) {
    size_t C, H, W;
    current_output(m, &C, &H, &W);
    snn_layer *l = append_layer(m, SNN_LAYER_CONV);
    if (!l) return NULL;
    l->cin = C;
    l->cout = cout;
    l->H = H;
    l->W = W;
    l->pool = pool;
    l->G = cout;
    l->S = H * W;
    l->out_hw = pool ? (H / 2) * (W / 2) : H * W;
    return l;
}

static snn_layer *append_dense(snn_model *m, size_t units) {
    size_t C, H, W;
    current_output(m, &C, &H, &W);
    snn_layer *l = append_layer(m, SNN_LAYER_DENSE);
    if (!l) return NULL;
    l->cin = C * H * W;
    l->cout = units;
    l->H = 1;
    l->W = units;
    l->G = 1;
    l->S = units;
    l->out_hw = units;
    return l;
}

#define APPEND(dst, call)                                                                     \
    do {                                                                                      \
        if (!((dst) = (call)))                                                                \
            return snn_fail(SNN_ERR_INVALID_ARG, "model: more than %d layers", SNN_MAX_LAYERS); \
    } while (0)

/* The seed's SimpleSNN: per block conv -> bn -> lif -> pool, then fc. */
static snn_status plan_simple(snn_model *m) {
    char name[64];
    for (int b = 0; b < m->cfg.num_blocks; b++) {
        snn_layer *c;
        APPEND(c, append_conv(m, (size_t)m->cfg.channels[b], 1));
        snprintf(name, sizeof name, "blocks.%d.conv.weight", b);
        SNN_TRY(add_conv_weight(m, c, name));
        snprintf(name, sizeof name, "blocks.%d.bn", b);
        SNN_TRY(add_bn(m, c, name));
        snprintf(name, sizeof name, "blocks.%d.lif", b);
        SNN_TRY(add_lif(m, &c->lif, name));
    }
    return SNN_OK;
}

/* The seed's VGGSNN: blocks of two (conv, bn) in one Sequential, their LIFs in a list
 * after them, then fc1 -> lif_fc -> fc2. */
#define SNN_VGG_HIDDEN 512
static snn_status plan_vgg(snn_model *m) {
    char name[64];
    for (int b = 0; b < m->cfg.num_blocks; b++)
        for (int j = 0; j < 2; j++) {
            snn_layer *c;
            APPEND(c, append_conv(m, (size_t)m->cfg.channels[b], j == 1));
            snprintf(name, sizeof name, "blocks.%d.%d.weight", b, 2 * j);
            SNN_TRY(add_conv_weight(m, c, name));
            snprintf(name, sizeof name, "blocks.%d.%d", b, 2 * j + 1);
            SNN_TRY(add_bn(m, c, name));
        }
    for (int i = 0; i < m->num_layers; i++) {
        snprintf(name, sizeof name, "lifs.%d", i);
        SNN_TRY(add_lif(m, &m->layer[i].lif, name));
    }
    snn_layer *d;
    APPEND(d, append_dense(m, SNN_VGG_HIDDEN));
    SNN_TRY(add_linear(m, &d->weight, &d->bias, d->cin, d->cout, "fc1"));
    SNN_TRY(add_lif(m, &d->lif, "lif_fc"));
    return SNN_OK;
}

static snn_status build_layers(snn_model *m) {
    const char *readout = "fc";
    switch (m->cfg.kind) {
    case SNN_MODEL_SIMPLE: SNN_TRY(plan_simple(m)); break;
    case SNN_MODEL_VGG:
        SNN_TRY(plan_vgg(m));
        readout = "fc2";
        break;
    default: return snn_fail(SNN_ERR_INVALID_ARG, "unknown model kind %d", (int)m->cfg.kind);
    }
    const snn_layer *last = &m->layer[m->num_layers - 1];
    m->readout = last->G * last->out_hw;
    return add_linear(m, &m->fc_w, &m->fc_b, m->readout, (size_t)m->cfg.num_classes, readout);
}

snn_status snn_model_build(snn_model **out, snn_context *ctx, const snn_model_config *cfg) {
    SNN_TRY(snn_model_config_check(cfg));
    snn_model *m = calloc(1, sizeof *m);
    if (!m) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "model");
    m->ctx = ctx;
    m->cfg = *cfg;
    m->fwd.ws.limit = snn_forward_ws_limit(ctx);
    snn_status st = build_layers(m);
    if (st != SNN_OK) {
        snn_model_free(m);
        return st;
    }
    /* The neutral values of each table entry; loading or init overwrites them. */
    for (int i = 0; i < m->num_layers; i++) {
        snn_layer *l = &m->layer[i];
        for (size_t k = 0; l->bn_weight && k < l->cout; k++) {
            l->bn_weight->host[k] = 1.0f;
            l->bn_var->host[k] = 1.0f;
        }
        l->lif.beta->host[0] = cfg->beta;
        l->lif.threshold->host[0] = cfg->threshold;
        l->lif.graded->host[0] = 1.0f;
    }
    *out = m;
    return SNN_OK;
}

/* The seed's _init_weights: Kaiming-normal (fan_out, gain sqrt(2)) convolutions,
 * Xavier-uniform linear weights, zero biases. */
static void init_weights(snn_model *m, uint64_t seed) {
    snn_rng rng;
    snn_rng_init(&rng, seed, 0x1417u);
    /* The draws' order: every convolution, then every linear layer, the readout last. */
    for (int i = 0; i < m->num_layers; i++) {
        if (m->layer[i].kind != SNN_LAYER_CONV) continue;
        snn_param *w = m->layer[i].weight;
        double std = sqrt(2.0 / (double)(m->layer[i].cout * 9));
        for (size_t k = 0; k < w->count; k++) w->host[k] = (float)(std * snn_rng_normal(&rng));
    }
    for (int i = 0; i <= m->num_layers; i++) {
        snn_param *w = i < m->num_layers ? m->layer[i].weight : m->fc_w;
        if (i < m->num_layers && m->layer[i].kind != SNN_LAYER_DENSE) continue;
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
    if (!m->ones) {
        const float one = 1.0f, zero = 0.0f;
        SNN_TRY(snn_buffer_create(ctx, sizeof(float), &m->ones));
        SNN_TRY(snn_buffer_create(ctx, sizeof(float), &m->zeros));
        SNN_TRY(snn_buffer_write(ctx, m->ones, 0, sizeof one, &one));
        SNN_TRY(snn_buffer_write(ctx, m->zeros, 0, sizeof zero, &zero));
    }
    for (int i = 0; i < m->num_layers; i++) {
        snn_layer *c = &m->layer[i];
        SNN_TRY(upload_param(m, c->weight));
        if (c->kind == SNN_LAYER_DENSE) {
            SNN_TRY(upload_param(m, c->bias));
            c->scale = m->ones;
            c->shift = m->zeros;
            continue;
        }
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
    return upload_param(m, m->fc_b);
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
    return fminf(fmaxf(m->layer[l].lif.beta->host[0], 0.0f), 1.0f); /* snnTorch clamps beta */
}

float snn_model_lif_threshold(const snn_model *m, int l) { return m->layer[l].lif.threshold->host[0]; }

double snn_model_widest_step(const snn_model *m) {
    double widest = (double)m->cfg.in_channels * (double)m->cfg.height * (double)m->cfg.width;
    for (int i = 0; i < m->num_layers; i++) {
        const snn_layer *l = &m->layer[i];
        widest = fmax(widest, (double)l->G * (double)l->S);
        if (l->kind == SNN_LAYER_DENSE) widest = fmax(widest, (double)l->cin);
    }
    return widest;
}

size_t snn_forward_ws_limit(const snn_context *ctx) {
    const size_t limit = (size_t)64 << 20;
    return ctx && ctx->memory_budget && ctx->memory_budget / 4 < limit ? ctx->memory_budget / 4 : limit;
}

void snn_forward_buffers_release(snn_forward_buffers *f) {
    snn_dbuf *all[] = {&f->input, &f->act, &f->conv, &f->spk, &f->cur0, &f->sum,
                       &f->logits, &f->sq, &f->lambda, &f->perturb};
    for (size_t i = 0; i < SNN_ARRAY_LEN(all); i++) snn_dbuf_release(all[i]);
    for (int i = 0; i < SNN_MAX_LAYERS; i++) {
        snn_dbuf_release(&f->mem[i]);
        snn_dbuf_release(&f->delta[i]);
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
    for (int i = 0; i < m->num_layers; i++) {
        if (m->layer[i].kind != SNN_LAYER_CONV) continue; /* dense layers borrow ones and zeros */
        snn_buffer_release(&m->layer[i].scale);
        snn_buffer_release(&m->layer[i].shift);
    }
    snn_buffer_release(&m->ones);
    snn_buffer_release(&m->zeros);
    snn_forward_buffers_release(&m->fwd);
    free(m);
}

size_t snn_model_input_elems(const snn_model *m, size_t B, snn_encoding encoding) {
    const snn_model_config *cfg = &m->cfg;
    const size_t in_T = encoding == SNN_ENCODING_NONE ? (size_t)cfg->T : 1;
    return B * in_T * (size_t)cfg->in_channels * (size_t)cfg->height * (size_t)cfg->width;
}

snn_context *snn_model_context(const snn_model *model) { return model ? model->ctx : NULL; }

snn_status snn_model_get_config(const snn_model *model, snn_model_config *cfg) {
    SNN_REQUIRE_ARG("snn_model_get_config", model);
    SNN_REQUIRE_ARG("snn_model_get_config", cfg);
    *cfg = model->cfg;
    return SNN_OK;
}

int snn_model_num_lif_layers(const snn_model *model) { return model ? model->num_layers : 0; }

snn_status snn_model_lif_shape(const snn_model *model, int layer, int batch, int *ndim, int64_t shape[4]) {
    SNN_REQUIRE_ARG("snn_model_lif_shape", model);
    SNN_REQUIRE_ARG("snn_model_lif_shape", ndim);
    SNN_REQUIRE_ARG("snn_model_lif_shape", shape);
    if (layer < 0 || layer >= model->num_layers)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_lif_shape: layer %d out of range (the model has %d LIF layers)",
                        layer, model->num_layers);
    if (batch < 1)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_lif_shape: batch must be >= 1, got %d", batch);
    const snn_layer *c = &model->layer[layer];
    if (c->kind == SNN_LAYER_CONV) {
        *ndim = 4;
        shape[0] = batch;
        shape[1] = (int64_t)c->cout;
        shape[2] = (int64_t)c->H;
        shape[3] = (int64_t)c->W;
    } else {
        *ndim = 2;
        shape[0] = batch;
        shape[1] = (int64_t)c->cout;
    }
    return SNN_OK;
}
