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

/* A linear layer's weight and, with bias, its bias (else *b stays NULL). */
static snn_status add_linear(snn_model *m, snn_param **w, snn_param **b, size_t fin, size_t fout,
                             const char *prefix, int bias) {
    int64_t ws[2] = {(int64_t)fout, (int64_t)fin}, bs[1] = {(int64_t)fout};
    ADD(*w, SNN_F32, 0, 2, ws, "%s.weight", prefix);
    if (bias) ADD(*b, SNN_F32, 0, 1, bs, "%s.bias", prefix);
    return SNN_OK;
}

static snn_status add_conv_weight(snn_model *m, snn_layer *c, const char *name) {
    int64_t s[4] = {(int64_t)c->cout, (int64_t)c->cin, (int64_t)c->geom.K, (int64_t)c->geom.K};
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
    if (p->kind == SNN_STAGE_DENSE) {
        *C = 1;
        *H = 1;
        *W = p->cout;
    } else {
        *C = p->cout;
        *H = p->Hp;
        *W = p->Wp;
    }
}

/* A conv stage; pool: the pooling after its LIF (K 0: none; the 2x2 average takes the
 * fused path). */
static snn_layer *append_conv(snn_model *m, size_t cout, size_t K, size_t stride, size_t pad, snn_pool_geom pool) {
    size_t C, H, W;
    current_output(m, &C, &H, &W);
    snn_layer *l = append_layer(m, SNN_STAGE_CONV);
    if (!l) return NULL;
    l->geom = (snn_conv_geom){C, H, W, cout, K, stride, pad, (H + 2 * pad - K) / stride + 1,
                              (W + 2 * pad - K) / stride + 1};
    H = l->geom.Ho;
    W = l->geom.Wo;
    l->cin = C;
    l->cout = cout;
    l->H = H;
    l->W = W;
    l->pool = pool.K == 2 && pool.stride == 2 && !pool.max;
    if (pool.K && !l->pool) {
        l->gpool = pool;
        l->gpool.Ho = (H - pool.K) / pool.stride + 1;
        l->gpool.Wo = (W - pool.K) / pool.stride + 1;
    }
    l->Hp = l->pool ? H / 2 : l->gpool.K ? l->gpool.Ho : H;
    l->Wp = l->pool ? W / 2 : l->gpool.K ? l->gpool.Wo : W;
    l->G = cout;
    l->S = H * W;
    l->out_hw = l->Hp * l->Wp;
    return l;
}

static snn_layer *append_dense(snn_model *m, size_t units) {
    size_t C, H, W;
    current_output(m, &C, &H, &W);
    snn_layer *l = append_layer(m, SNN_STAGE_DENSE);
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
            return snn_fail(SNN_ERR_UNSUPPORTED, "model: more than %d spiking layers", SNN_MAX_LAYERS); \
    } while (0)

/* ------------------------------------------------ lowering a description -- *
 * The kernels run stages of (conv2d, batchnorm2d, leaky[, avgpool2d]) and (linear,
 * leaky), flattens between them, and a readout of [flatten,] [dropout,] linear. Every
 * other layer or option is refused here, naming it, until a kernel runs it. */

#define WHAT_RUNS                                                                                        \
    "snncl's kernels run conv2d + [batchnorm2d] + leaky [+ avgpool2d or maxpool2d], flatten, "         \
    "linear + leaky, and a readout of [dropout +] [linear]; leaky with any "                          \
    "reset_mechanism and surrogate, reset_delay true, beta and threshold not learned"

static snn_status refuse(const char *part, int i, const snn_net_layer *l, const char *why) {
    return snn_fail(SNN_ERR_UNSUPPORTED, "%s[%d] %s: %s (%s)", part, i, snn_layer_type_name(l->d.type), why,
                    WHAT_RUNS);
}

static snn_status lowered_leaky(const snn_net_layer *L, int count, int i) {
    if (i >= count || L[i].d.type != SNN_LAYER_LEAKY) {
        if (i >= count) return refuse("layers", i - 1, &L[i - 1], "needs a leaky after it");
        return refuse("layers", i, &L[i], "a leaky must come here");
    }
    const snn_layer_desc *d = &L[i].d;
    if (!d->reset_delay) return refuse("layers", i, &L[i], "only reset_delay true runs yet");
    if (d->learn_beta || d->learn_threshold) return refuse("layers", i, &L[i], "learn_beta and learn_threshold do not run yet");
    return SNN_OK;
}

/* Which stage (and role in it) a description layer became, for the parameter pass. */
typedef struct lowered {
    int stage;             /* -1: no parameters (flatten, pooling, dropout) */
    enum { ROLE_NONE, ROLE_CONV, ROLE_BN, ROLE_LIF, ROLE_LINEAR, ROLE_READOUT } role;
} lowered;

static snn_status lower_layers(snn_model *m, lowered *role) {
    const snn_net_layer *L = m->net->part[SNN_NET_LAYERS];
    const int count = m->net->count[SNN_NET_LAYERS];
    for (int i = 0; i < count; i++) role[i].stage = -1;
    for (int i = 0; i < count;) {
        const snn_layer_desc *d = &L[i].d;
        snn_layer *c;
        if (d->type == SNN_LAYER_FLATTEN) {
            i++;
        } else if (d->type == SNN_LAYER_CONV2D) {
            /* conv2d [batchnorm2d] leaky [avgpool2d] */
            const int bn = i + 1 < count && L[i + 1].d.type == SNN_LAYER_BATCHNORM2D, lif = i + 1 + bn;
            if (bn && d->bias)
                return refuse("layers", i, &L[i], "a bias before batchnorm2d: BatchNorm cancels it (set bias false)");
            if (bn && L[i + 1].d.eps != 1e-5f) return refuse("layers", i + 1, &L[i + 1], "only eps 1e-5 runs yet");
            SNN_TRY(lowered_leaky(L, count, lif));
            snn_pool_geom pool = {0};
            if (lif + 1 < count &&
                (L[lif + 1].d.type == SNN_LAYER_AVGPOOL2D || L[lif + 1].d.type == SNN_LAYER_MAXPOOL2D)) {
                const snn_layer_desc *p = &L[lif + 1].d;
                pool.K = (size_t)p->kernel_size;
                pool.stride = (size_t)(p->stride ? p->stride : p->kernel_size);
                pool.max = p->type == SNN_LAYER_MAXPOOL2D;
            }
            APPEND(c, append_conv(m, (size_t)d->out, (size_t)d->kernel_size, (size_t)d->stride, (size_t)d->padding,
                                  pool));
            c->bn = bn;
            if (bn) c->bn_momentum = L[i + 1].d.momentum;
            role[i] = (lowered){m->num_layers - 1, ROLE_CONV};
            if (bn) role[i + 1] = (lowered){m->num_layers - 1, ROLE_BN};
            role[lif] = (lowered){m->num_layers - 1, ROLE_LIF};
            i = lif + 1 + (pool.K != 0);
        } else if (d->type == SNN_LAYER_LINEAR) {
            SNN_TRY(lowered_leaky(L, count, i + 1));
            APPEND(c, append_dense(m, (size_t)d->out));
            role[i] = (lowered){m->num_layers - 1, ROLE_LINEAR};
            role[i + 1] = (lowered){m->num_layers - 1, ROLE_LIF};
            i += 2;
        } else if (d->type == SNN_LAYER_LEAKY) {
            return refuse("layers", i, &L[i], "a leaky runs only after conv2d + batchnorm2d or after linear");
        } else {
            return refuse("layers", i, &L[i], "does not run here yet");
        }
    }
    if (m->num_layers == 0) return snn_fail(SNN_ERR_UNSUPPORTED, "layers: no spiking layer (%s)", WHAT_RUNS);
    return SNN_OK;
}

/* The readout: [flatten,] [dropout,] [linear]; without the linear layer the summed
 * output (num_classes features, as shape inference checked) is the logits. Returns the
 * linear layer's index in *linear, or -1. */
static snn_status lower_readout(snn_model *m, int *linear) {
    const snn_net_layer *R = m->net->part[SNN_NET_READOUT];
    const int count = m->net->count[SNN_NET_READOUT];
    int i = 0;
    if (i < count && R[i].d.type == SNN_LAYER_FLATTEN) i++;
    m->cfg.dropout = 0.0f;
    if (i < count && R[i].d.type == SNN_LAYER_DROPOUT) m->cfg.dropout = R[i++].d.p;
    *linear = -1;
    if (i < count && R[i].d.type == SNN_LAYER_LINEAR) *linear = i++;
    if (i < count) return refuse("readout", i, &R[i], "the readout runs only [flatten,] [dropout,] [linear] yet");
    return SNN_OK;
}

/* The description's parameters in state_dict order: by the layers' param_rank, then
 * their position (a preset's ranks follow the seed's modules). */
static snn_status add_network_params(snn_model *m, const lowered *role) {
    const snn_network *n = m->net;
    const snn_net_layer *L = n->part[SNN_NET_LAYERS];
    const int count = n->count[SNN_NET_LAYERS];
    int ranks = 1;
    for (int i = 0; i < count; i++) ranks = L[i].param_rank >= ranks ? L[i].param_rank + 1 : ranks;
    char name[64];
    for (int pass = 0; pass < ranks; pass++)
        for (int i = 0; i < count; i++) {
            if (role[i].stage < 0 || L[i].param_rank != pass) continue;
            snn_layer *c = &m->layer[role[i].stage];
            switch (role[i].role) {
            case ROLE_CONV: {
                snprintf(name, sizeof name, "%s.weight", L[i].name);
                SNN_TRY(add_conv_weight(m, c, name));
                int64_t bs[1] = {(int64_t)c->cout};
                if (L[i].d.bias) ADD(c->bias, SNN_F32, 0, 1, bs, "%s.bias", L[i].name);
                break;
            }
            case ROLE_BN: SNN_TRY(add_bn(m, c, L[i].name)); break;
            case ROLE_LIF: SNN_TRY(add_lif(m, &c->lif, L[i].name)); break;
            case ROLE_LINEAR: SNN_TRY(add_linear(m, &c->weight, &c->bias, c->cin, c->cout, L[i].name, L[i].d.bias)); break;
            default: break;
            }
        }
    return SNN_OK;
}

/* The model's config as a description implies it: for messages, files and callers of
 * snn_model_get_config (the first leaky's beta and threshold, the first convolutions'
 * channels, as many as the config holds). */
static void derive_config(snn_model *m) {
    const snn_network *n = m->net;
    snn_model_config *c = &m->cfg;
    memset(c, 0, sizeof *c);
    c->kind = SNN_MODEL_NETWORK;
    c->in_channels = n->in_channels;
    c->height = n->height;
    c->width = n->width;
    c->num_classes = n->num_classes;
    c->T = n->T;
    c->encoding = n->encoding;
    c->encoding_gain = n->gain;
    c->beta = NAN;
    for (int i = 0; i < n->count[SNN_NET_LAYERS]; i++) {
        const snn_layer_desc *d = &n->part[SNN_NET_LAYERS][i].d;
        if (d->type == SNN_LAYER_LEAKY && isnan(c->beta)) {
            c->beta = d->beta;
            c->threshold = d->threshold;
        }
        if (d->type == SNN_LAYER_CONV2D && c->num_blocks < SNN_MAX_BLOCKS) c->channels[c->num_blocks++] = d->out;
    }
}

static snn_status build_layers(snn_model *m) {
    lowered role[SNN_NET_MAX_LAYERS];
    derive_config(m);
    SNN_TRY(lower_layers(m, role));
    int linear;
    SNN_TRY(lower_readout(m, &linear));
    SNN_TRY(add_network_params(m, role));
    const snn_layer *last = &m->layer[m->num_layers - 1];
    m->readout = last->G * last->out_hw;
    if (linear < 0) return SNN_OK; /* the summed spikes are the logits */
    const snn_net_layer *fc = &m->net->part[SNN_NET_READOUT][linear];
    return add_linear(m, &m->fc_w, &m->fc_b, m->readout, (size_t)m->cfg.num_classes, fc->name, fc->d.bias);
}

snn_status snn_model_build_network(snn_model **out, snn_context *ctx, const snn_network *net) {
    snn_model *m = calloc(1, sizeof *m);
    if (!m) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "model");
    m->ctx = ctx;
    m->fwd.ws.limit = snn_forward_ws_limit(ctx);
    snn_status st = snn_network_copy(net, &m->net);
    if (st == SNN_OK) st = snn_network_infer(m->net);
    if (st == SNN_OK) st = build_layers(m);
    if (st != SNN_OK) {
        snn_model_free(m);
        return st;
    }
    /* The neutral values of each table entry; loading or init overwrites them. */
    const snn_net_layer *L = m->net->part[SNN_NET_LAYERS];
    for (int i = 0, l = 0; i < m->net->count[SNN_NET_LAYERS]; i++) {
        if (L[i].d.type != SNN_LAYER_LEAKY) continue;
        snn_layer *c = &m->layer[l++];
        for (size_t k = 0; c->bn_weight && k < c->cout; k++) {
            c->bn_weight->host[k] = 1.0f;
            c->bn_var->host[k] = 1.0f;
        }
        c->lif.beta->host[0] = L[i].d.beta;
        c->lif.threshold->host[0] = L[i].d.threshold;
        c->lif.graded->host[0] = 1.0f;
        c->lif.reset_mechanism->i64 = (int64_t)L[i].d.reset_mechanism; /* snnTorch's reset_mechanism_val */
        c->reset = (unsigned)L[i].d.reset_mechanism;
        c->sg_kind = (unsigned)L[i].d.surrogate;
        c->sg = L[i].d.surrogate_param;
    }
    *out = m;
    return SNN_OK;
}

snn_status snn_model_build(snn_model **out, snn_context *ctx, const snn_model_config *cfg) {
    SNN_TRY(snn_model_config_check(cfg));
    snn_network *net;
    SNN_TRY(snn_network_preset(&net, cfg));
    snn_status st = snn_model_build_network(out, ctx, net);
    snn_network_free(net);
    if (st == SNN_OK) (*out)->cfg = *cfg; /* a preset's config as given */
    return st;
}

/* The seed's _init_weights (SNN_INIT_SEED): Kaiming-normal (fan_out, gain sqrt(2))
 * convolutions, Xavier-uniform linear weights, zero biases; or PyTorch's module
 * defaults (SNN_INIT_PYTORCH): weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
static void init_weights(snn_model *m, uint64_t seed, snn_init_scheme scheme) {
    snn_rng rng;
    snn_rng_init(&rng, seed, 0x1417u);
    /* The draws' order: every convolution, then every linear layer, the readout last;
     * each weight before its bias. */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i <= m->num_layers; i++) {
            const int readout = i == m->num_layers;
            const snn_layer *l = readout ? NULL : &m->layer[i];
            snn_param *w = readout ? m->fc_w : l->weight, *b = readout ? m->fc_b : l->bias;
            const int conv = !readout && l->kind == SNN_STAGE_CONV;
            if (!w || conv != (pass == 0)) continue;
            const double fan_in = (double)w->count / (double)w->shape[0];
            if (scheme == SNN_INIT_PYTORCH) {
                const double bound = 1.0 / sqrt(fan_in);
                for (size_t k = 0; k < w->count; k++) w->host[k] = (float)(bound * (2.0 * snn_rng_uniform(&rng) - 1.0));
                for (size_t k = 0; b && k < b->count; k++) b->host[k] = (float)(bound * (2.0 * snn_rng_uniform(&rng) - 1.0));
                continue;
            }
            for (size_t k = 0; b && k < b->count; k++) b->host[k] = 0.0f;
            if (conv) {
                const double std = sqrt(2.0 / (double)(l->cout * l->geom.K * l->geom.K));
                for (size_t k = 0; k < w->count; k++) w->host[k] = (float)(std * snn_rng_normal(&rng));
            } else {
                const double bound = sqrt(6.0 / (double)(w->shape[0] + w->shape[1]));
                for (size_t k = 0; k < w->count; k++) w->host[k] = (float)(bound * (2.0 * snn_rng_uniform(&rng) - 1.0));
            }
        }
}

snn_status snn_model_init(snn_model *model, snn_init_scheme scheme, uint64_t init_seed) {
    SNN_REQUIRE_ARG("snn_model_init", model);
    if (scheme != SNN_INIT_SEED && scheme != SNN_INIT_PYTORCH)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_model_init: unknown scheme %d", (int)scheme);
    SNN_TRY(snn_model_sync_host(model)); /* beta and threshold as the device has them */
    for (int i = 0; i < model->num_layers; i++) {
        snn_layer *c = &model->layer[i];
        for (size_t k = 0; c->bn_weight && k < c->cout; k++) {
            c->bn_weight->host[k] = 1.0f;
            c->bn_bias->host[k] = 0.0f;
            c->bn_mean->host[k] = 0.0f;
            c->bn_var->host[k] = 1.0f;
        }
        if (c->bn_count) c->bn_count->i64 = 0;
    }
    init_weights(model, init_seed, scheme);
    return snn_model_upload(model);
}

/* Initialization and the first upload of a freshly built model (freed on failure). */
static snn_status init_and_upload(snn_model *m, uint64_t init_seed, snn_model **out) {
    init_weights(m, init_seed, SNN_INIT_SEED);
    snn_status st = snn_model_upload(m);
    if (st != SNN_OK) {
        snn_model_free(m);
        return st;
    }
    *out = m;
    return SNN_OK;
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
    return init_and_upload(m, init_seed, out);
}

snn_status snn_model_create_network(snn_model **out, snn_context *ctx, const snn_network *net, uint64_t init_seed) {
    SNN_REQUIRE_ARG("snn_model_create_network", out);
    *out = NULL;
    SNN_REQUIRE_ARG("snn_model_create_network", ctx);
    SNN_REQUIRE_ARG("snn_model_create_network", net);
    snn_model *m;
    snn_status built = snn_model_build_network(&m, ctx, net);
    if (built != SNN_OK) return snn_fail_context(built, "snn_model_create_network");
    return init_and_upload(m, init_seed, out);
}

snn_status snn_model_network(const snn_model *model, snn_network **out) {
    SNN_REQUIRE_ARG("snn_model_network", out);
    *out = NULL;
    SNN_REQUIRE_ARG("snn_model_network", model);
    SNN_TRY(snn_network_copy(model->net, out));
    /* The description with the model's own values: a loaded or trained model's
     * beta and threshold, which the tensors hold. */
    snn_net_layer *L = (*out)->part[SNN_NET_LAYERS];
    for (int i = 0, l = 0; i < (*out)->count[SNN_NET_LAYERS]; i++) {
        if (L[i].d.type != SNN_LAYER_LEAKY) continue;
        L[i].d.beta = model->layer[l].lif.beta->host[0];
        L[i].d.threshold = model->layer[l].lif.threshold->host[0];
        l++;
    }
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
        /* the bias of layers that have none: as long as the widest layer */
        size_t widest = (size_t)m->cfg.num_classes;
        for (int i = 0; i < m->num_layers; i++) widest = m->layer[i].cout > widest ? m->layer[i].cout : widest;
        SNN_TRY(snn_buffer_create(ctx, widest * sizeof(float), &m->zero_vec));
        SNN_TRY(snn_buffer_fill_zero(ctx, m->zero_vec, 0, widest * sizeof(float)));
    }
    for (int i = 0; i < m->num_layers; i++) {
        snn_layer *c = &m->layer[i];
        SNN_TRY(upload_param(m, c->weight));
        if (c->kind == SNN_STAGE_DENSE) {
            if (c->bias) SNN_TRY(upload_param(m, c->bias));
            c->scale = m->ones;
            c->shift = m->zeros;
            continue;
        }
        /* BatchNorm tensors (or the bias) too: training updates them on the device. */
        if (c->bn) {
            SNN_TRY(upload_param(m, c->bn_weight));
            SNN_TRY(upload_param(m, c->bn_bias));
            SNN_TRY(upload_param(m, c->bn_mean));
            SNN_TRY(upload_param(m, c->bn_var));
        } else if (c->bias) {
            SNN_TRY(upload_param(m, c->bias));
        }
        float *fold = malloc(2 * c->cout * sizeof(float));
        if (!fold) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "BatchNorm folding");
        if (c->bn) {
            /* Folded in double: y = gamma*(x - mean)/sqrt(var + 1e-5) + beta. */
            for (size_t k = 0; k < c->cout; k++) {
                double scale = (double)c->bn_weight->host[k] / sqrt((double)c->bn_var->host[k] + 1e-5);
                fold[k] = (float)scale;
                fold[c->cout + k] = (float)((double)c->bn_bias->host[k] - (double)c->bn_mean->host[k] * scale);
            }
        } else {
            /* No BatchNorm: the convolution's bias (or zero) is the LIF's shift. */
            for (size_t k = 0; k < c->cout; k++) {
                fold[k] = 1.0f;
                fold[c->cout + k] = c->bias ? c->bias->host[k] : 0.0f;
            }
        }
        snn_status st = SNN_OK;
        if (!c->scale) st = snn_buffer_create(ctx, c->cout * sizeof(float), &c->scale);
        if (st == SNN_OK && !c->shift) st = snn_buffer_create(ctx, c->cout * sizeof(float), &c->shift);
        if (st == SNN_OK) st = snn_buffer_write(ctx, c->scale, 0, c->cout * sizeof(float), fold);
        if (st == SNN_OK) st = snn_buffer_write(ctx, c->shift, 0, c->cout * sizeof(float), fold + c->cout);
        free(fold);
        SNN_TRY(st);
    }
    if (m->fc_w) SNN_TRY(upload_param(m, m->fc_w));
    if (m->fc_b) SNN_TRY(upload_param(m, m->fc_b));
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
    return fminf(fmaxf(m->layer[l].lif.beta->host[0], 0.0f), 1.0f); /* snnTorch clamps beta */
}

float snn_model_lif_threshold(const snn_model *m, int l) { return m->layer[l].lif.threshold->host[0]; }

double snn_model_widest_step(const snn_model *m) {
    double widest = (double)m->cfg.in_channels * (double)m->cfg.height * (double)m->cfg.width;
    for (int i = 0; i < m->num_layers; i++) {
        const snn_layer *l = &m->layer[i];
        widest = fmax(widest, (double)l->G * (double)l->S);
        if (l->kind == SNN_STAGE_DENSE) widest = fmax(widest, (double)l->cin);
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
        if (m->layer[i].kind != SNN_STAGE_CONV) continue; /* dense layers borrow ones and zeros */
        snn_buffer_release(&m->layer[i].scale);
        snn_buffer_release(&m->layer[i].shift);
    }
    snn_buffer_release(&m->ones);
    snn_buffer_release(&m->zeros);
    snn_buffer_release(&m->zero_vec);
    snn_forward_buffers_release(&m->fwd);
    snn_network_free(m->net);
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
    if (c->kind == SNN_STAGE_CONV) {
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
