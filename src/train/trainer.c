/* The trainer: configuration, optimizer state and updates, learning-rate schedules,
 * and the public training API. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snncl_opencl.h"
#include "train.h"

void snn_train_config_default(snn_train_config *cfg) {
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->optimizer = SNN_OPTIM_ADAM;
    cfg->lr = 2e-3f;
    cfg->beta1 = 0.9f;
    cfg->beta2 = 0.999f;
    cfg->adam_eps = 1e-8f;
    cfg->momentum = 0.9f;
    cfg->schedule = SNN_SCHEDULE_COSINE;
    cfg->total_steps = 0;
    cfg->step_size = 1000;
    cfg->gamma = 0.1f;
    cfg->lyap_weight = 0.1f;
    cfg->lyap_target = 0.0f;
    cfg->lyap_eps = 1e-4f;
}

static const char *const optimizer_names[] = {"adam", "sgd"};
static const char *const schedule_names[] = {"constant", "cosine", "step"};

const char *snn_optimizer_name(snn_optimizer opt) {
    return (unsigned)opt < SNN_ARRAY_LEN(optimizer_names) ? optimizer_names[opt] : "unknown";
}

const char *snn_schedule_name(snn_schedule s) {
    return (unsigned)s < SNN_ARRAY_LEN(schedule_names) ? schedule_names[s] : "unknown";
}

snn_status snn_optimizer_parse(const char *name, snn_optimizer *out) {
    SNN_REQUIRE_ARG("snn_optimizer_parse", name);
    SNN_REQUIRE_ARG("snn_optimizer_parse", out);
    for (size_t i = 0; i < SNN_ARRAY_LEN(optimizer_names); i++)
        if (strcmp(name, optimizer_names[i]) == 0) {
            *out = (snn_optimizer)i;
            return SNN_OK;
        }
    return snn_fail(SNN_ERR_INVALID_ARG, "snn_optimizer_parse: unknown optimizer name '%s' (expected adam or sgd)",
                    name);
}

snn_status snn_schedule_parse(const char *name, snn_schedule *out) {
    SNN_REQUIRE_ARG("snn_schedule_parse", name);
    SNN_REQUIRE_ARG("snn_schedule_parse", out);
    for (size_t i = 0; i < SNN_ARRAY_LEN(schedule_names); i++)
        if (strcmp(name, schedule_names[i]) == 0) {
            *out = (snn_schedule)i;
            return SNN_OK;
        }
    return snn_fail(SNN_ERR_INVALID_ARG,
                    "snn_schedule_parse: unknown schedule name '%s' (expected constant, cosine or step)", name);
}

static snn_status check_config(const snn_train_config *c) {
#define REQUIRE(cond, ...)                                                                              \
    do {                                                                                                \
        if (!(cond)) return snn_fail(SNN_ERR_INVALID_ARG, "snn_trainer_create: cfg->" __VA_ARGS__); \
    } while (0)
    REQUIRE((unsigned)c->optimizer <= SNN_OPTIM_SGD, "optimizer %d is unknown", (int)c->optimizer);
    REQUIRE((unsigned)c->schedule <= SNN_SCHEDULE_STEP, "schedule %d is unknown", (int)c->schedule);
    REQUIRE(isfinite(c->lr) && c->lr > 0.0f, "lr must be a positive number, got %g", (double)c->lr);
    if (c->optimizer == SNN_OPTIM_ADAM) {
        REQUIRE(c->beta1 >= 0.0f && c->beta1 < 1.0f, "beta1 must be in [0, 1), got %g", (double)c->beta1);
        REQUIRE(c->beta2 >= 0.0f && c->beta2 < 1.0f, "beta2 must be in [0, 1), got %g", (double)c->beta2);
        REQUIRE(isfinite(c->adam_eps) && c->adam_eps > 0.0f, "adam_eps must be positive, got %g",
                (double)c->adam_eps);
    } else {
        REQUIRE(c->momentum >= 0.0f && c->momentum < 1.0f, "momentum must be in [0, 1), got %g",
                (double)c->momentum);
    }
    REQUIRE(isfinite(c->weight_decay) && c->weight_decay >= 0.0f, "weight_decay must be >= 0, got %g",
            (double)c->weight_decay);
    REQUIRE(c->schedule != SNN_SCHEDULE_COSINE || c->total_steps > 0,
            "total_steps must be > 0 for the cosine schedule, got %lld", (long long)c->total_steps);
    REQUIRE(c->schedule != SNN_SCHEDULE_STEP || c->step_size > 0, "step_size must be > 0, got %lld",
            (long long)c->step_size);
    REQUIRE(isfinite(c->gamma) && c->gamma > 0.0f, "gamma must be positive, got %g", (double)c->gamma);
    REQUIRE(isfinite(c->grad_clip) && c->grad_clip >= 0.0f, "grad_clip must be >= 0, got %g", (double)c->grad_clip);
    REQUIRE(isfinite(c->lyap_weight) && c->lyap_weight >= 0.0f, "lyap_weight must be >= 0, got %g",
            (double)c->lyap_weight);
    REQUIRE(isfinite(c->lyap_target), "lyap_target must be finite, got %g", (double)c->lyap_target);
    REQUIRE(c->lyap_warmup >= 0, "lyap_warmup must be >= 0, got %lld", (long long)c->lyap_warmup);
    REQUIRE(c->lyap_weight == 0.0f || (isfinite(c->lyap_eps) && c->lyap_eps > 0.0f),
            "lyap_eps must be a positive number, got %g", (double)c->lyap_eps);
    REQUIRE(c->sync_batchnorm == 0 || c->sync_batchnorm == 1, "sync_batchnorm must be 0 or 1, got %d",
            (int)c->sync_batchnorm);
#undef REQUIRE
    return SNN_OK;
}

/* The learning rate of update number `step` (0-based). */
static float schedule_lr(const snn_train_config *c, int64_t step) {
    const double pi = 3.14159265358979323846;
    if (c->schedule == SNN_SCHEDULE_COSINE) {
        double f = step >= c->total_steps ? 1.0 : (double)step / (double)c->total_steps;
        return (float)(c->lr * 0.5 * (1.0 + cos(pi * f)));
    }
    if (c->schedule == SNN_SCHEDULE_STEP) return (float)(c->lr * pow(c->gamma, (double)(step / c->step_size)));
    return c->lr;
}

static int trainable(const snn_model *m, const snn_param *p) {
    if (p->dtype != SNN_F32 || !p->dev) return 0;
    for (int i = 0; i < m->num_layers; i++)
        if (p == m->layer[i].bn_mean || p == m->layer[i].bn_var) return 0;
    return 1;
}

void snn_trainer_free(snn_trainer *tr) {
    if (!tr) return;
    clFinish(tr->ctx->queue);
    for (int i = 0; i < tr->num_train; i++) {
        snn_dbuf_release(&tr->train[i].grad);
        snn_dbuf_release(&tr->train[i].m);
        snn_dbuf_release(&tr->train[i].v);
    }
    for (int i = 0; i < SNN_MAX_LAYERS; i++) {
        train_layer *l = &tr->layer[i];
        snn_dbuf *all[] = {&l->in, &l->z, &l->mean, &l->rstd, &l->var_unbiased, &l->scale, &l->shift};
        for (size_t k = 0; k < SNN_ARRAY_LEN(all); k++) snn_dbuf_release(all[k]);
    }
    snn_dbuf *all[] = {&tr->input, &tr->labels, &tr->perturb, &tr->mem,
                       &tr->delta, &tr->scratch, &tr->gup[0], &tr->gup[1], &tr->carry, &tr->partial, &tr->sum,
                       &tr->dropped, &tr->logits, &tr->glogits, &tr->gsum, &tr->loss, &tr->correct, &tr->sq,
                       &tr->lambda, &tr->gdiv, &tr->lyap_out, &tr->norms, &tr->bad_label};
    for (size_t k = 0; k < SNN_ARRAY_LEN(all); k++) snn_dbuf_release(all[k]);
    snn_sync_release(&tr->sync);
    snn_workspace_release(&tr->ws);
    snn_workspace_release(&tr->ws2);
    snn_conv_diff_release(&tr->diff);
    free(tr);
}

snn_status snn_trainer_create(snn_trainer **out, snn_model *model, const snn_train_config *cfg) {
    SNN_REQUIRE_ARG("snn_trainer_create", out);
    *out = NULL;
    SNN_REQUIRE_ARG("snn_trainer_create", model);
    snn_train_config defaults;
    if (!cfg) {
        snn_train_config_default(&defaults);
        defaults.schedule = SNN_SCHEDULE_CONSTANT;
        cfg = &defaults;
    }
    SNN_TRY(check_config(cfg));
    SNN_TRY(snn_model_sync_host(model)); /* device copies match the host tables from here on */
    snn_trainer *tr = calloc(1, sizeof *tr);
    if (!tr) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "trainer");
    tr->model = model;
    tr->ctx = model->ctx;
    tr->cfg = *cfg;
    tr->ws.limit = model->fwd.ws.limit;
    tr->ws2.limit = model->fwd.ws.limit;
    snn_status st = SNN_OK;
    for (int i = 0; i < model->num_params && st == SNN_OK; i++) {
        snn_param *p = &model->params[i];
        if (!trainable(model, p)) continue;
        train_param *t = &tr->train[tr->num_train++];
        t->p = p;
        const size_t bytes = p->count * sizeof(float);
        st = snn_dbuf_reserve(tr->ctx, &t->grad, bytes);
        if (st == SNN_OK) st = snn_dbuf_reserve(tr->ctx, &t->m, bytes);
        if (st == SNN_OK && cfg->optimizer == SNN_OPTIM_ADAM) st = snn_dbuf_reserve(tr->ctx, &t->v, bytes);
        if (st == SNN_OK) st = snn_buffer_fill_zero(tr->ctx, t->grad.mem, 0, bytes);
        if (st == SNN_OK) st = snn_buffer_fill_zero(tr->ctx, t->m.mem, 0, bytes);
        if (st == SNN_OK && t->v.mem) st = snn_buffer_fill_zero(tr->ctx, t->v.mem, 0, bytes);
    }
    if (st == SNN_OK) st = snn_dbuf_reserve(tr->ctx, &tr->norms, (size_t)tr->num_train * sizeof(float));
    if (st == SNN_OK) st = snn_dbuf_reserve(tr->ctx, &tr->bad_label, sizeof(cl_int));
    if (st == SNN_OK) st = snn_buffer_fill_zero(tr->ctx, tr->bad_label.mem, 0, sizeof(cl_int));
    if (st != SNN_OK) {
        snn_trainer_free(tr);
        return st;
    }
    *out = tr;
    return SNN_OK;
}

/* One step's largest buffer (a convolution's output over all steps and both
 * trajectories) in bytes, in double so that absurd batch sizes cannot wrap around. */
static double largest_step_buffer(const snn_model *m, double B, double P) {
    return snn_model_widest_step(m) * P * (double)m->cfg.T * B * sizeof(float);
}

/* The shapes of a step on a batch of `size` (host or device), after the checks that
 * need no data. */
static snn_status plan_batch(const snn_trainer *tr, int size, int pre_encoded, int64_t first, train_plan *p,
                             const char *fn) {
    const snn_model *m = tr->model;
    if (size < 1) return snn_fail(SNN_ERR_INVALID_ARG, "%s: batch->size must be >= 1, got %d", fn, size);
    /* BatchNorm in training mode normalizes each channel over the batch and the image
     * (B*H*W values): a batch of one is fine unless a layer's image is 1x1, which
     * PyTorch refuses too ("Expected more than 1 value per channel when training").
     * The seed's models pool every convolution's output, so a valid configuration has
     * none at 1x1; a layer kind to come might. */
    for (int i = 0; size == 1 && i < m->num_layers; i++) {
        const snn_layer *l = &m->layer[i];
        if (l->bn_mean && l->S < 2)
            return snn_fail(SNN_ERR_INVALID_ARG,
                            "%s: batch->size 1 leaves the BatchNorm of layer %d (%zux%zu) one value per channel "
                            "(PyTorch: \"Expected more than 1 value per channel when training\"); use a batch "
                            "of at least 2",
                            fn, i, l->H, l->W);
    }
    const size_t P = train_trajectories(&tr->cfg);
    const double largest = largest_step_buffer(m, (double)size, (double)P);
    if (largest > (double)tr->ctx->info.max_alloc_bytes)
        return snn_fail(SNN_ERR_OUT_OF_MEMORY,
                        "%s: batch->size %d is too large for this device: a buffer of %.0f bytes is needed "
                        "(device limit %llu); use a smaller batch",
                        fn, size, largest, (unsigned long long)tr->ctx->info.max_alloc_bytes);
    /* The random streams count a tensor's elements over the global batch in 32 bits. */
    const double widest = snn_model_widest_step(m);
    if (first < 0 || ((double)first + size) * widest > 4294967295.0)
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "%s: batch->first = %lld (with batch->size %d): a global batch's samples are numbered "
                        "from 0, fewer than %.0f of them for this model",
                        fn, (long long)first, size, 4294967295.0 / widest);
    memset(p, 0, sizeof *p);
    p->B = (size_t)size;
    p->first = (size_t)first;
    p->T = (size_t)m->cfg.T;
    p->P = P;
    p->L = (size_t)m->num_layers;
    p->K = (size_t)m->cfg.num_classes;
    p->encoding = pre_encoded ? SNN_ENCODING_NONE : m->cfg.encoding;
    p->eps = tr->cfg.lyap_eps;
    /* the regularizer's weight for this update (snn_train_config.lyap_warmup) */
    const int64_t warm = tr->cfg.lyap_warmup;
    p->lyap_weight = warm > 0 && tr->steps_done + 1 < warm
                         ? (float)((double)tr->cfg.lyap_weight * (double)(tr->steps_done + 1) / (double)warm)
                         : tr->cfg.lyap_weight;
    return SNN_OK;
}

static snn_status check_batch(const snn_trainer *tr, const snn_batch *b, train_plan *p, const char *fn) {
    if (!b) return snn_fail(SNN_ERR_INVALID_ARG, "%s: batch is NULL", fn);
    if (!b->input) return snn_fail(SNN_ERR_INVALID_ARG, "%s: batch->input is NULL", fn);
    if (!b->labels) return snn_fail(SNN_ERR_INVALID_ARG, "%s: batch->labels is NULL", fn);
    /* Before reading size labels: a size far beyond the device fails without touching them. */
    SNN_TRY(plan_batch(tr, b->size, b->pre_encoded, b->first, p, fn));
    const snn_model *m = tr->model;
    for (int i = 0; i < b->size; i++)
        if (b->labels[i] < 0 || b->labels[i] >= m->cfg.num_classes)
            return snn_fail(SNN_ERR_INVALID_ARG, "%s: batch->labels[%d] = %lld is outside [0, %d)", fn, i,
                            (long long)b->labels[i], m->cfg.num_classes);
    if (p->P == 2 && b->perturb)
        for (int l = 0; l < m->num_layers; l++)
            if (!b->perturb[l])
                return snn_fail(SNN_ERR_INVALID_ARG, "%s: batch->perturb[%d] (LIF layer %d) is NULL", fn, l, l);
    return SNN_OK;
}

/* Squared gradient norms per tensor into tr->norms (for clipping and the report). */
static snn_status grad_norms(snn_trainer *tr) {
    for (int i = 0; i < tr->num_train; i++)
        SNN_TRY(snn_op_grad_sumsq(tr->ctx, tr->train[i].grad.mem, tr->train[i].p->count, tr->norms.mem, (size_t)i));
    return SNN_OK;
}

static snn_status update(snn_trainer *tr, float lr) {
    const snn_train_config *c = &tr->cfg;
    const int64_t k = tr->steps_done + 1;
    snn_optim_args a = {0};
    a.lr = lr;
    a.beta1 = c->beta1;
    a.beta2 = c->beta2;
    a.eps = c->adam_eps;
    a.momentum = c->momentum;
    a.weight_decay = c->weight_decay;
    a.bc1 = (float)(1.0 - pow(c->beta1, (double)k));
    a.bc2_sqrt = (float)sqrt(1.0 - pow(c->beta2, (double)k));
    a.first = tr->steps_done == 0;
    a.norms = tr->norms.mem;
    a.num_norms = (size_t)tr->num_train;
    a.max_norm = c->grad_clip;
    for (int i = 0; i < tr->num_train; i++) {
        train_param *t = &tr->train[i];
        if (c->optimizer == SNN_OPTIM_ADAM)
            SNN_TRY(snn_op_adam_update(tr->ctx, t->p->dev, t->grad.mem, t->m.mem, t->v.mem, t->p->count, &a));
        else
            SNN_TRY(snn_op_sgd_update(tr->ctx, t->p->dev, t->grad.mem, t->m.mem, t->p->count, &a));
    }
    return SNN_OK;
}

/* Reads the step's figures back (the only wait of a step). */
static snn_status read_stats(snn_trainer *tr, const train_plan *p, snn_step_stats *out) {
    const size_t B = p->B;
    float *buf = malloc((2 * B + 1 + (size_t)tr->num_train) * sizeof(float));
    if (!buf) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "step statistics");
    float *loss = buf, *correct = buf + B, *lyap = buf + 2 * B, *norms = lyap + 1;
    *lyap = 0.0f;
    snn_status st = snn_buffer_read(tr->ctx, tr->loss.mem, 0, B * sizeof(float), loss);
    if (st == SNN_OK) st = snn_buffer_read(tr->ctx, tr->correct.mem, 0, B * sizeof(float), correct);
    if (st == SNN_OK && p->P == 2) st = snn_buffer_read(tr->ctx, tr->lyap_out.mem, 0, sizeof(float), lyap);
    if (st == SNN_OK)
        st = snn_buffer_read(tr->ctx, tr->norms.mem, 0, (size_t)tr->num_train * sizeof(float), norms);
    if (st == SNN_OK) {
        double ce = 0, ok = 0, sq = 0;
        for (size_t b = 0; b < B; b++) {
            ce += loss[b];
            ok += correct[b];
        }
        for (int i = 0; i < tr->num_train; i++) sq += norms[i];
        ce /= (double)B;
        const double dl = (double)*lyap - (double)tr->cfg.lyap_target;
        memset(out, 0, sizeof *out);
        out->cross_entropy = (float)ce;
        out->lyapunov = *lyap;
        out->loss = (float)(ce + (p->P == 2 ? (double)p->lyap_weight * dl * dl : 0.0));
        out->correct = (int)ok;
        out->grad_norm = (float)sqrt(sq);
    }
    free(buf);
    return st;
}

/* Steps enqueued on device batches since the last wait: whether one of their labels
 * was out of range (the flag is reset). The steps themselves are settled either way. */
static snn_status settle_pending(snn_trainer *tr, const char *fn) {
    const int steps = tr->pending;
    tr->pending = 0;
    cl_int bad = 0;
    SNN_TRY(snn_buffer_read(tr->ctx, tr->bad_label.mem, 0, sizeof bad, &bad));
    if (!bad) return SNN_OK;
    SNN_TRY(snn_buffer_fill_zero(tr->ctx, tr->bad_label.mem, 0, sizeof bad));
    return snn_fail(SNN_ERR_INVALID_ARG,
                    "%s: a label of the %d step(s) on device batches since the last wait is outside [0, %d); "
                    "those samples were left out of the loss and the gradients",
                    fn, steps, tr->model->cfg.num_classes);
}

/* Enqueues the gradients of a planned batch and, with apply, the update. */
static snn_status enqueue_step(snn_trainer *tr, const snn_batch *batch, const train_plan *p, int apply, float *lr) {
    tr->model->device_newer = 1; /* running statistics move even without an update */
    SNN_TRY(snn_train_forward_backward(tr, batch, p));
    SNN_TRY(grad_norms(tr));
    *lr = 0.0f;
    if (apply) {
        *lr = schedule_lr(&tr->cfg, tr->steps_done);
        SNN_TRY(update(tr, *lr));
        tr->steps_done++; /* counted once enqueued, even if reading the figures back fails */
    }
    return SNN_OK;
}

/* A process's empty share of a synchronized step: zero gradients, figures of nothing. */
static snn_status empty_share(snn_trainer *tr, snn_step_stats *stats) {
    SNN_TRY(snn_sync_empty_share(tr));
    for (int i = 0; i < tr->num_train; i++)
        SNN_TRY(snn_buffer_fill_zero(tr->ctx, tr->train[i].grad.mem, 0, tr->train[i].p->count * sizeof(float)));
    if (stats) snn_step_stats_init(stats);
    return SNN_OK;
}

static snn_status run_step(snn_trainer *tr, const snn_batch *batch, snn_step_stats *stats, int apply) {
    const char *fn = apply ? "snn_trainer_step" : "snn_trainer_gradients";
    SNN_REQUIRE_ARG(fn, tr);
    if (!apply && batch && batch->size == 0 && snn_sync_active(tr)) return empty_share(tr, stats);
    train_plan p;
    SNN_TRY(check_batch(tr, batch, &p, fn));
    if (tr->pending) SNN_TRY(settle_pending(tr, fn));
    float lr;
    SNN_TRY(enqueue_step(tr, batch, &p, apply, &lr));
    snn_step_stats s;
    SNN_TRY(read_stats(tr, &p, &s));
    s.lr = lr;
    if (stats) *stats = s;
    return SNN_OK;
}

snn_status snn_trainer_step(snn_trainer *tr, const snn_batch *batch, snn_step_stats *stats) {
    return snn_sync_end_step(tr, run_step(tr, batch, stats, 1));
}

snn_status snn_trainer_gradients(snn_trainer *tr, const snn_batch *batch, snn_step_stats *stats) {
    return snn_sync_end_step(tr, run_step(tr, batch, stats, 0));
}

static snn_status enqueue_step_cl(snn_trainer *tr, const snn_batch_cl *b, cl_uint num_wait,
                                  const cl_event *wait_list, cl_event *event, int apply) {
    const char *fn = apply ? "snn_trainer_step_cl" : "snn_trainer_gradients_cl";
    SNN_REQUIRE_ARG(fn, tr);
    if (!b) return snn_fail(SNN_ERR_INVALID_ARG, "%s: batch is NULL", fn);
    SNN_TRY(snn_wait_list_check(num_wait, wait_list, fn));
    train_plan p;
    SNN_TRY(plan_batch(tr, b->size, b->pre_encoded, b->first, &p, fn));
    const size_t fs = sizeof(float), in_elems = snn_model_input_elems(tr->model, p.B, p.encoding);
    if (b->input_offset > SIZE_MAX / fs || b->labels_offset > SIZE_MAX / sizeof(cl_int))
        return snn_fail(SNN_ERR_INVALID_ARG, "%s: an offset is beyond any buffer", fn);
    SNN_TRY(snn_caller_buffer(tr->ctx, b->input, b->input_offset * fs, in_elems * fs, fn, "batch->input"));
    SNN_TRY(snn_caller_buffer(tr->ctx, b->labels, b->labels_offset * sizeof(cl_int), p.B * sizeof(cl_int), fn,
                              "batch->labels"));
    p.dev_input = b->input;
    p.dev_input_off = b->input_offset;
    p.dev_labels = b->labels;
    p.dev_labels_off = b->labels_offset;
    snn_batch host = {.size = b->size, .seed = b->seed, .pre_encoded = b->pre_encoded, .first = b->first};
    SNN_TRY(snn_enqueue_wait(tr->ctx, num_wait, wait_list));
    float lr;
    SNN_TRY(enqueue_step(tr, &host, &p, apply, &lr));
    tr->pending++;
    tr->pending_plan = p;
    tr->pending_lr = lr;
    return snn_enqueue_marker(tr->ctx, event);
}

/* *event is written only at the end: the caller may pass one variable as both its
 * wait list and the event to receive. */
static snn_status run_step_cl(snn_trainer *tr, const snn_batch_cl *b, cl_uint num_wait, const cl_event *wait_list,
                              cl_event *event, int apply) {
    const unsigned long syncs = tr ? snn_host_syncs(tr->ctx) : 0;
    const snn_status st = snn_sync_end_step(tr, enqueue_step_cl(tr, b, num_wait, wait_list, event, apply));
    if (st != SNN_OK && event) *event = NULL;
    if (st == SNN_OK) snn_profile_device_call(tr->ctx, syncs);
    return st;
}

snn_status snn_trainer_step_cl(snn_trainer *tr, const snn_batch_cl *batch, cl_uint num_wait,
                               const cl_event *wait_list, cl_event *event) {
    return run_step_cl(tr, batch, num_wait, wait_list, event, 1);
}

snn_status snn_trainer_gradients_cl(snn_trainer *tr, const snn_batch_cl *batch, cl_uint num_wait,
                                    const cl_event *wait_list, cl_event *event) {
    return run_step_cl(tr, batch, num_wait, wait_list, event, 0);
}

snn_status snn_trainer_wait(snn_trainer *tr, snn_step_stats *stats) {
    SNN_REQUIRE_ARG("snn_trainer_wait", tr);
    if (!tr->pending)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_trainer_wait: no step on a device batch since the last wait");
    const train_plan p = tr->pending_plan;
    const float lr = tr->pending_lr;
    SNN_TRY(settle_pending(tr, "snn_trainer_wait"));
    snn_step_stats s;
    SNN_TRY(read_stats(tr, &p, &s));
    s.lr = lr;
    if (stats) *stats = s;
    return SNN_OK;
}

snn_status snn_trainer_get_config(const snn_trainer *tr, snn_train_config *cfg) {
    SNN_REQUIRE_ARG("snn_trainer_get_config", tr);
    SNN_REQUIRE_ARG("snn_trainer_get_config", cfg);
    *cfg = tr->cfg;
    return SNN_OK;
}

snn_status snn_trainer_apply(snn_trainer *tr) {
    SNN_REQUIRE_ARG("snn_trainer_apply", tr);
    tr->model->device_newer = 1;
    SNN_TRY(grad_norms(tr)); /* the gradients may have changed since they were computed */
    SNN_TRY(update(tr, schedule_lr(&tr->cfg, tr->steps_done)));
    tr->steps_done++;
    return SNN_OK;
}

snn_status snn_trainer_param_cl(snn_trainer *tr, int i, cl_mem *param, cl_mem *grad) {
    SNN_REQUIRE_ARG("snn_trainer_param_cl", tr);
    if (i < 0 || i >= tr->num_train)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_trainer_param_cl: i = %d is out of range (%d trainable tensors)",
                        i, tr->num_train);
    if (param) {
        *param = tr->train[i].p->dev;
        tr->model->device_newer = 1; /* the caller may write it: the device copy counts from now */
    }
    if (grad) *grad = tr->train[i].grad.mem;
    return SNN_OK;
}

void snn_batch_cl_init(snn_batch_cl *batch) {
    if (batch) memset(batch, 0, sizeof *batch);
}

void snn_batch_init(snn_batch *batch) {
    if (batch) memset(batch, 0, sizeof *batch);
}

void snn_step_stats_init(snn_step_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
}

int snn_trainer_num_grads(const snn_trainer *tr) { return tr ? tr->num_train : 0; }

snn_status snn_trainer_grad_info(const snn_trainer *tr, int i, const char **name, int *ndim,
                                 int64_t shape[4], size_t *count) {
    SNN_REQUIRE_ARG("snn_trainer_grad_info", tr);
    if (i < 0 || i >= tr->num_train)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_trainer_grad_info: i = %d is out of range (%d trainable tensors)",
                        i, tr->num_train);
    const snn_param *p = tr->train[i].p;
    if (name) *name = p->name;
    if (ndim) *ndim = p->ndim;
    if (shape)
        for (int d = 0; d < p->ndim; d++) shape[d] = p->shape[d];
    if (count) *count = p->count;
    return SNN_OK;
}

snn_status snn_trainer_read_grad(snn_trainer *tr, int i, float *out) {
    SNN_REQUIRE_ARG("snn_trainer_read_grad", tr);
    if (i < 0 || i >= tr->num_train)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_trainer_read_grad: i = %d is out of range (%d trainable tensors)",
                        i, tr->num_train);
    SNN_REQUIRE_ARG("snn_trainer_read_grad", out);
    return snn_buffer_read(tr->ctx, tr->train[i].grad.mem, 0, tr->train[i].p->count * sizeof(float), out);
}

snn_status snn_trainer_write_grad(snn_trainer *tr, int i, const float *in) {
    SNN_REQUIRE_ARG("snn_trainer_write_grad", tr);
    if (i < 0 || i >= tr->num_train)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_trainer_write_grad: i = %d is out of range (%d trainable tensors)",
                        i, tr->num_train);
    SNN_REQUIRE_ARG("snn_trainer_write_grad", in);
    return snn_buffer_write(tr->ctx, tr->train[i].grad.mem, 0, tr->train[i].p->count * sizeof(float), in);
}

int64_t snn_trainer_steps_done(const snn_trainer *tr) { return tr ? tr->steps_done : 0; }

float snn_trainer_next_lr(const snn_trainer *tr) { return tr ? schedule_lr(&tr->cfg, tr->steps_done) : 0.0f; }

/* Optimizer state tensor names, as torch.optim's state_dict calls them. */
static void state_names(const snn_trainer *tr, const train_param *t, char *m, char *v, size_t len) {
    if (tr->cfg.optimizer == SNN_OPTIM_ADAM) {
        snprintf(m, len, "optim.%s.exp_avg", t->p->name);
        snprintf(v, len, "optim.%s.exp_avg_sq", t->p->name);
    } else {
        snprintf(m, len, "optim.%s.momentum_buffer", t->p->name);
        v[0] = '\0';
    }
}

snn_status snn_trainer_save_state(snn_trainer *tr, snn_safetensors *st) {
    SNN_REQUIRE_ARG("snn_trainer_save_state", tr);
    SNN_REQUIRE_ARG("snn_trainer_save_state", st);
    char mname[96], vname[96], num[32];
    size_t most = 0;
    for (int i = 0; i < tr->num_train; i++)
        if (tr->train[i].p->count > most) most = tr->train[i].p->count;
    float *host = malloc(most * sizeof(float));
    if (!host) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "optimizer state");
    snn_status s = SNN_OK;
    for (int i = 0; i < tr->num_train && s == SNN_OK; i++) {
        const train_param *t = &tr->train[i];
        int64_t shape[4];
        for (int d = 0; d < t->p->ndim; d++) shape[d] = t->p->shape[d];
        state_names(tr, t, mname, vname, sizeof mname);
        const snn_dbuf *bufs[2] = {&t->m, &t->v};
        const char *names[2] = {mname, vname};
        for (int k = 0; k < 2 && s == SNN_OK; k++) {
            if (!names[k][0]) continue;
            s = snn_buffer_read(tr->ctx, bufs[k]->mem, 0, t->p->count * sizeof(float), host);
            if (s == SNN_OK) s = snn_safetensors_add(st, names[k], SNN_F32, t->p->ndim, shape, host);
        }
    }
    free(host);
    SNN_TRY(s);
    snprintf(num, sizeof num, "%lld", (long long)tr->steps_done);
    SNN_TRY(snn_safetensors_meta_set(st, "optim.steps", num));
    return snn_safetensors_meta_set(st, "optim.name", snn_optimizer_name(tr->cfg.optimizer));
}

snn_status snn_trainer_load_state(snn_trainer *tr, const snn_safetensors *st) {
    SNN_REQUIRE_ARG("snn_trainer_load_state", tr);
    SNN_REQUIRE_ARG("snn_trainer_load_state", st);
    const char *name = snn_safetensors_meta_get(st, "optim.name");
    const char *steps = snn_safetensors_meta_get(st, "optim.steps");
    if (!name || !steps)
        return snn_fail(SNN_ERR_FORMAT, "snn_trainer_load_state: st holds no optimizer state (metadata optim.name, optim.steps)");
    if (strcmp(name, snn_optimizer_name(tr->cfg.optimizer)) != 0)
        return snn_fail(SNN_ERR_FORMAT, "snn_trainer_load_state: the checkpoint's optimizer is '%s', this trainer uses '%s'", name,
                        snn_optimizer_name(tr->cfg.optimizer));
    char *end;
    long long n = strtoll(steps, &end, 10);
    if (*steps == '\0' || *end != '\0' || n < 0)
        return snn_fail(SNN_ERR_FORMAT, "snn_trainer_load_state: metadata optim.steps is not a step count: '%s'", steps);
    char mname[96], vname[96];
    size_t most = 0;
    for (int i = 0; i < tr->num_train; i++)
        if (tr->train[i].p->count > most) most = tr->train[i].p->count;
    float *host = malloc(most * sizeof(float));
    if (!host) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "optimizer state");
    snn_status s = SNN_OK;
    /* Pass 0 only checks that every tensor is there with its shape, so a bad file leaves
     * the trainer as it was; pass 1 uploads. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < tr->num_train && s == SNN_OK; i++) {
            const train_param *t = &tr->train[i];
            state_names(tr, t, mname, vname, sizeof mname);
            const snn_dbuf *bufs[2] = {&t->m, &t->v};
            const char *names[2] = {mname, vname};
            for (int k = 0; k < 2 && s == SNN_OK; k++) {
                if (!names[k][0]) continue;
                s = snn_safetensors_get_f32(st, names[k], t->p->ndim, t->p->shape, host);
                if (s == SNN_OK && pass == 1)
                    s = snn_buffer_write(tr->ctx, bufs[k]->mem, 0, t->p->count * sizeof(float), host);
            }
        }
    }
    free(host);
    SNN_TRY(s);
    tr->steps_done = n;
    return SNN_OK;
}
