/* The training-mode forward pass and backpropagation through time (see train.h). */
#include <stdlib.h>
#include <string.h>

#include "train.h"

#define FS sizeof(float)

/* Layout of layer i's input and output for this step. */
typedef struct layer_dims {
    size_t Pz, Tz;  /* trajectories and steps with distinct inputs: 1 where shared */
    size_t Nz;      /* images through the convolution: Pz * Tz * B */
    size_t HW, Ho, Wo; /* the convolution's output (the LIF's), pooled */
    size_t HWin;       /* the convolution's input */
} layer_dims;

static layer_dims dims_of(const snn_model *m, const train_plan *p, int i) {
    const snn_layer *c = &m->layer[i];
    layer_dims d;
    /* The first layer's input is the same for both trajectories, and for direct
     * encoding the same at every step: its convolution runs once for all of them. */
    d.Pz = i == 0 ? 1 : p->P;
    d.Tz = (i == 0 && p->encoding == SNN_ENCODING_DIRECT) ? 1 : p->T;
    d.Nz = d.Pz * d.Tz * p->B;
    d.HW = c->S;
    d.HWin = c->geom.H * c->geom.W;
    d.Ho = c->Hp;
    d.Wo = c->Wp;
    return d;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* The first layer's convolution output is not kept: it shares layer 1's buffer and is
 * recomputed (cheaply: few input channels) when backward reaches it. */
static cl_mem z_buffer(snn_trainer *tr, int i) {
    return (i == 0 && tr->model->num_layers > 1) ? tr->layer[1].z.mem : tr->layer[i].z.mem;
}

static snn_status reserve(snn_trainer *tr, const train_plan *p) {
    snn_model *m = tr->model;
    snn_context *ctx = tr->ctx;
    const size_t B = p->B, T = p->T, P = p->P;
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->input, snn_model_input_elems(m, B, p->encoding) * FS));
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->labels, B * sizeof(cl_int)));
    size_t scratch = 0, gup = 0, state = 0, partial = 0;
    const size_t N = P * T * B;
    for (int i = 0; i < m->num_layers; i++) {
        const snn_layer *c = &m->layer[i];
        layer_dims d = dims_of(m, p, i);
        train_layer *l = &tr->layer[i];
        size_t zbytes = c->G * c->S * d.Nz * FS;
        if (i == 1) {
            const snn_layer *c0 = &m->layer[0];
            zbytes = max_sz(zbytes, c0->G * c0->S * dims_of(m, p, 0).Nz * FS);
        }
        if (i != 0 || m->num_layers == 1) SNN_TRY(snn_dbuf_reserve(ctx, &l->z, zbytes));
        scratch = max_sz(scratch, c->G * c->S * N);  /* the LIF's spikes or gradient */
        state = max_sz(state, c->G * c->S * B);
        if (c->kind == SNN_STAGE_DENSE) {
            SNN_TRY(snn_dbuf_reserve(ctx, &l->in, N * c->cin * FS));
            gup = max_sz(gup, N * max_sz(c->cout, c->cin));
            continue;
        }
        SNN_TRY(snn_dbuf_reserve(ctx, &l->in, c->cin * d.Nz * d.HWin * FS));
        const size_t tab = d.Pz * d.Tz * c->cout * FS;
        snn_dbuf *tabs[] = {&l->mean, &l->rstd, &l->var_unbiased, &l->scale, &l->shift};
        for (size_t k = 0; k < SNN_ARRAY_LEN(tabs); k++) SNN_TRY(snn_dbuf_reserve(ctx, tabs[k], tab));
        gup = max_sz(gup, c->cout * N * d.Ho * d.Wo); /* gradient of this layer's output */
        if (c->gpool.K) gup = max_sz(gup, c->cout * N * c->S); /* and before its pooling */
        gup = max_sz(gup, c->cin * d.Nz * d.HWin);    /* gradient of its input */
        partial = max_sz(partial, 2 * P * T * c->cout);
    }
    const size_t readout = m->readout;
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->scratch, scratch * FS));
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->gup[0], gup * FS));
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->gup[1], gup * FS));
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->mem, state * FS));
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->delta, state * FS));
    if (P == 2) SNN_TRY(snn_dbuf_reserve(ctx, &tr->carry, 2 * state * FS));
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->partial, max_sz(1, partial) * FS));
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->sum, B * readout * FS));
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->dropped, B * readout * FS));
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->gsum, B * readout * FS));
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->logits, B * p->K * FS));
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->glogits, B * p->K * FS));
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->loss, B * FS));
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->correct, B * FS));
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->sq, max_sz(1, p->L * T * B) * FS));
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->lambda, B * FS));
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->gdiv, T * B * FS));
    SNN_TRY(snn_dbuf_reserve(ctx, &tr->lyap_out, FS));
    return SNN_OK;
}

/* Zero membranes and, with the estimate, delta = eps * n for LIF layer l (C x HW per sample). */
static snn_status init_state(snn_trainer *tr, const train_plan *p, const snn_batch *batch, int l,
                             size_t C, size_t HW) {
    snn_context *ctx = tr->ctx;
    const size_t n = p->B * C * HW;
    SNN_TRY(snn_buffer_fill_zero(ctx, tr->mem.mem, 0, n * FS));
    if (p->P == 1) return SNN_OK;
    if (batch->perturb) {
        SNN_TRY(snn_dbuf_reserve(ctx, &tr->perturb, n * FS));
        SNN_TRY(snn_buffer_write(ctx, tr->perturb.mem, 0, n * FS, batch->perturb[l]));
        return snn_op_scale_to_channel_major(ctx, tr->perturb.mem, tr->delta.mem, p->B, C, HW, p->eps);
    }
    return snn_op_normal(ctx, tr->delta.mem, p->B, C, HW, (unsigned)l, p->eps, batch->seed, p->first * C * HW);
}

/* Runs LIF layer l over all steps from z with the affine tables; writes spikes
 * (record = 0) or membranes and raw deltas (record = 1) to out (G, P, T, B*S). */
/* Arguments of LIF layer l over all steps from z with the affine tables, writing to
 * out (G, P, T, B*S); the state buffers are the trainer's. */
static snn_lif_args lif_args(snn_trainer *tr, const train_plan *p, int l, cl_mem z, size_t Pz, size_t Tz,
                             cl_mem scale, cl_mem shift, size_t G, size_t S, cl_mem out) {
    snn_model *m = tr->model;
    const size_t B = p->B;
    snn_lif_args a = {0};
    a.in = z;
    a.gstride = Pz * Tz * B * S;
    a.tstride = Tz == 1 ? 0 : B * S;
    a.p_off = Pz == 2 ? Tz * B * S : 0;
    a.scale = scale;
    a.shift = shift;
    /* one affine for every step and trajectory: a dense layer's identity, or a stage
     * without BatchNorm (ones and the bias) */
    const int constant = scale == m->ones || scale == m->layer[l].scale;
    a.aff_tstride = (constant || Tz == 1) ? 0 : G;
    a.aff_pstride = (constant || Pz == 1) ? 0 : Tz * G;
    a.beta = snn_model_lif_beta(m, l);
    a.thr = snn_model_lif_threshold(m, l);
    a.reset = m->layer[l].reset;
    a.mem = tr->mem.mem;
    a.delta = tr->delta.mem;
    a.spk = out;
    a.spk_gstride = p->P * p->T * B * S;
    a.G = G;
    a.S = S;
    a.B = B;
    a.T = p->T;
    a.sq = tr->sq.mem;
    a.sq_off = (size_t)l * p->T * B;
    a.eps = p->eps;
    return a;
}

/* Runs LIF layer l: spikes (record = 0) or membranes and raw deltas (record = 1). */
static snn_status run_lif(snn_trainer *tr, const train_plan *p, const snn_batch *batch, int l, cl_mem z,
                          size_t Pz, size_t Tz, cl_mem scale, cl_mem shift, size_t G, size_t S, cl_mem out,
                          int record) {
    SNN_TRY(init_state(tr, p, batch, l, G, S));
    snn_lif_args a = lif_args(tr, p, l, z, Pz, Tz, scale, shift, G, S, out);
    a.record = record;
    return p->P == 2 ? snn_op_lif_lyapunov(tr->ctx, &a) : snn_op_lif_forward(tr->ctx, &a);
}

/* One trajectory of conv layer i with its pooling fused in: pooled spikes to out. */
static snn_status run_lif_pooled(snn_trainer *tr, const train_plan *p, int i, cl_mem z, size_t Tz, cl_mem scale,
                                 cl_mem shift, cl_mem out) {
    const snn_layer *c = &tr->model->layer[i];
    const size_t B = p->B, S = c->S;
    SNN_TRY(snn_buffer_fill_zero(tr->ctx, tr->mem.mem, 0, B * c->cout * S * FS));
    snn_lif_args a = lif_args(tr, p, i, z, 1, Tz, scale, shift, c->cout, S, out);
    a.spk_gstride = p->T * B * c->out_hw; /* the pooled output's layout */
    return snn_op_lif_forward_pool(tr->ctx, &a, c->H, c->W);
}

static snn_status upload_batch(snn_trainer *tr, const train_plan *p, const snn_batch *batch) {
    snn_context *ctx = tr->ctx;
    const snn_model_config *cfg = &tr->model->cfg;
    const size_t B = p->B, C0 = (size_t)cfg->in_channels, HW0 = (size_t)cfg->height * (size_t)cfg->width;
    const size_t in_T = p->encoding == SNN_ENCODING_NONE ? p->T : 1;
    const size_t in_bytes = snn_model_input_elems(tr->model, B, p->encoding) * FS;
    cl_mem src = tr->input.mem;
    if (p->dev_input && p->dev_input_off == 0)
        src = p->dev_input; /* read in place */
    else if (p->dev_input)
        SNN_TRY(snn_buffer_copy(ctx, p->dev_input, p->dev_input_off * FS, tr->input.mem, 0, in_bytes));
    else
        SNN_TRY(snn_buffer_write(ctx, tr->input.mem, 0, in_bytes, batch->input));
    if (p->dev_labels) {
        SNN_TRY(snn_buffer_copy(ctx, p->dev_labels, p->dev_labels_off * sizeof(cl_int), tr->labels.mem, 0,
                                B * sizeof(cl_int)));
    } else {
        cl_int *lab = malloc(B * sizeof *lab);
        if (!lab) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "labels");
        for (size_t b = 0; b < B; b++) lab[b] = (cl_int)batch->labels[b];
        snn_status st = snn_buffer_write(ctx, tr->labels.mem, 0, B * sizeof *lab, lab);
        free(lab);
        SNN_TRY(st);
    }
    cl_mem in0 = tr->layer[0].in.mem;
    if (p->encoding == SNN_ENCODING_RATE)
        return snn_op_encode_rate(ctx, src, in0, B, C0, HW0, p->T, 0, cfg->encoding_gain, batch->seed,
                                  p->first * C0 * HW0);
    return snn_op_to_channel_major(ctx, src, in0, B, in_T, 0, in_T, C0, HW0);
}

/* z = conv(in) over d.Nz images; with two trajectories (both in in, the perturbed
 * ones d.Nz / 2 images after the reference's), the perturbed half as the reference's
 * plus the sparse difference where that is sparse enough. */
static snn_status conv_forward(snn_trainer *tr, const snn_layer *c, cl_mem in, layer_dims d, cl_mem z) {
    snn_context *ctx = tr->ctx;
    const size_t HW = d.HW;
    if (d.Pz == 1 || tr->model->dense_perturbed || !snn_conv_is3x3(&c->geom))
        return snn_op_conv2d_at(ctx, (snn_images){in, d.Nz, 0}, d.Nz, &c->geom, c->weight->dev,
                                (snn_images){z, d.Nz, 0}, &tr->ws);
    const size_t NB = d.Nz / 2; /* images per trajectory */
    const snn_images ref_in = {in, d.Nz, 0}, ref_out = {z, d.Nz, 0};
    SNN_TRY(snn_op_conv3x3_at(ctx, ref_in, c->cin, NB, c->H, c->W, c->weight->dev, c->cout, ref_out, &tr->ws));
    /* ent and val (slots x 9*cin each) within the workspace's limit, as in eval */
    const size_t slots = NB * HW / 16, fit = tr->ws.limit / (c->cin * 9 * 2 * sizeof(float));
    int dense;
    SNN_TRY(snn_op_conv3x3_diff(ctx, in, c->cin, d.Nz, NB, NB, c->H, c->W, c->weight->dev, c->cout,
                                slots < fit ? slots : fit, 0, &tr->diff, &dense));
    if (dense)
        return snn_op_conv3x3_at(ctx, (snn_images){in, d.Nz, NB}, c->cin, NB, c->H, c->W, c->weight->dev, c->cout,
                                 (snn_images){z, d.Nz, NB}, &tr->ws);
    return snn_op_conv3x3_diff_apply(ctx, &tr->diff, z, d.Nz * HW, NB * HW, NB * HW, c->cout);
}

/* The convolution's gradients from dz (Cout, Pz, Tz, B, H, W): the weight's, and the
 * input's into din (NULL: none). With two trajectories, when their inputs differ
 * sparsely: the weight gradient as (dY + dY_p) X^T + dY_p (X_p - X)^T, the sum of
 * the gradients put into z (no longer needed: BatchNorm's backward has run). */
static snn_status conv_backward(snn_trainer *tr, const snn_layer *c, cl_mem in, layer_dims d, cl_mem dz,
                                cl_mem z, cl_mem dweight, cl_mem din) {
    snn_context *ctx = tr->ctx;
    const snn_images none = {NULL, 0, 0};
    if (d.Pz == 2 && !tr->model->dense_perturbed && snn_conv_is3x3(&c->geom)) {
        const size_t NB = d.Nz / 2;
        int dense;
        SNN_TRY(snn_op_conv3x3_wgrad_diff(ctx, (snn_images){in, d.Nz, 0}, NB, c->cin, NB, c->H, c->W, c->cout,
                                          (snn_images){dz, d.Nz, NB}, dweight, 0.0f, &tr->ws, &dense));
        if (dense)
            tr->diff.wgrad_dense++;
        else
            tr->diff.wgrad_sparse++;
        if (!dense) {
            SNN_TRY(snn_op_sum_blocks(ctx, dz, z, c->cout, 2, NB * d.HW));
            SNN_TRY(snn_op_conv3x3_backward_at(ctx, (snn_images){in, d.Nz, 0}, c->cin, NB, c->H, c->W, c->weight->dev,
                                               c->cout, (snn_images){z, NB, 0}, dweight, 1.0f, none, &tr->ws,
                                               &tr->ws2));
            if (!din) return SNN_OK;
            return snn_op_conv3x3_backward_at(ctx, (snn_images){in, d.Nz, 0}, c->cin, d.Nz, c->H, c->W,
                                              c->weight->dev, c->cout, (snn_images){dz, d.Nz, 0}, NULL, 0.0f,
                                              (snn_images){din, d.Nz, 0}, &tr->ws, &tr->ws2);
        }
    }
    return snn_op_conv2d_backward_at(ctx, (snn_images){in, d.Nz, 0}, d.Nz, &c->geom, c->weight->dev,
                                     (snn_images){dz, d.Nz, 0}, dweight, 0.0f,
                                     din ? (snn_images){din, d.Nz, 0} : none, &tr->ws, &tr->ws2);
}

/* The LIF input's affine of conv layer i in training: this step's BatchNorm tables, or
 * without BatchNorm ones and the live bias (the device copy the optimizer updates). */
static void conv_affine(snn_trainer *tr, int i, cl_mem *scale, cl_mem *shift) {
    const snn_layer *c = &tr->model->layer[i];
    *scale = c->bn ? tr->layer[i].scale.mem : c->scale;
    *shift = c->bn ? tr->layer[i].shift.mem : snn_model_bias(tr->model, c->bias);
}

static snn_status forward(snn_trainer *tr, const train_plan *p, const snn_batch *batch) {
    snn_model *m = tr->model;
    snn_context *ctx = tr->ctx;
    const size_t B = p->B, T = p->T, P = p->P;
    SNN_TRY(upload_batch(tr, p, batch));
    /* Each layer's spikes go straight into the next conv layer's input, or through the
     * pool; otherwise (a dense layer next, or the readout) they wait in gup[1]. */
    for (int i = 0; i < m->num_layers; i++) {
        snn_layer *c = &m->layer[i];
        train_layer *l = &tr->layer[i];
        const int next_conv = i + 1 < m->num_layers && m->layer[i + 1].kind == SNN_STAGE_CONV;
        cl_mem next = next_conv ? tr->layer[i + 1].in.mem : tr->gup[1].mem;
        if (c->kind == SNN_STAGE_DENSE) {
            const snn_layer *prev = &m->layer[i - 1];
            const size_t N = P * T * B;
            SNN_TRY(snn_op_flatten_rows(ctx, tr->gup[1].mem, l->in.mem, prev->G, N, prev->out_hw));
            SNN_TRY(snn_op_linear(ctx, l->in.mem, N, c->cin, c->weight->dev, snn_model_bias(m, c->bias), c->cout,
                                  l->z.mem));
            SNN_TRY(run_lif(tr, p, batch, i, l->z.mem, P, T, c->scale, c->shift, 1, c->cout, next, 0));
            continue;
        }
        layer_dims d = dims_of(m, p, i);
        cl_mem z = z_buffer(tr, i);
        SNN_TRY(conv_forward(tr, c, l->in.mem, d, z));
        if (c->bn) {
            if (snn_sync_active(tr))
                SNN_TRY(snn_sync_bn_stats(tr, i, z, d.Pz * d.Tz, B, d.HW));
            else
                SNN_TRY(snn_op_bn_stats(ctx, z, c->cout, d.Pz * d.Tz, B * d.HW, c->bn_weight->dev, c->bn_bias->dev,
                                        l->mean.mem, l->rstd.mem, l->var_unbiased.mem, l->scale.mem, l->shift.mem));
            SNN_TRY(snn_op_bn_running_update(ctx, l->mean.mem, l->var_unbiased.mem, c->bn_mean->dev, c->bn_var->dev,
                                             c->cout, P, T, d.Pz, d.Tz, c->bn_momentum));
            c->bn_count->i64 += (int64_t)(P * T);
        }
        cl_mem scale, shift;
        conv_affine(tr, i, &scale, &shift);
        if (c->pool && P == 1) {
            SNN_TRY(run_lif_pooled(tr, p, i, z, d.Tz, scale, shift, next));
        } else {
            cl_mem out = c->pool || c->gpool.K ? tr->scratch.mem : next;
            SNN_TRY(run_lif(tr, p, batch, i, z, d.Pz, d.Tz, scale, shift, c->cout, d.HW, out, 0));
            if (c->pool) SNN_TRY(snn_op_avgpool2x2(ctx, tr->scratch.mem, next, c->cout * P * T * B, c->H, c->W));
            if (c->gpool.K)
                SNN_TRY(snn_op_pool2d(ctx, tr->scratch.mem, next, c->cout * P * T * B, c->H, c->W, &c->gpool));
        }
    }
    /* The last layer's spikes (G, P, T, B, hw) wait in gup[1] until backward needs the buffer. */
    const snn_layer *last = &m->layer[m->num_layers - 1];
    const size_t readout = m->readout;
    SNN_TRY(snn_buffer_fill_zero(ctx, tr->sum.mem, 0, B * readout * FS));
    SNN_TRY(snn_op_spike_sum(ctx, tr->gup[1].mem, tr->sum.mem, last->G, T, B, last->out_hw,
                             P * T * B * last->out_hw));
    const float drop = m->cfg.dropout;
    cl_mem x = tr->sum.mem;
    if (drop > 0.0f) {
        SNN_TRY(snn_op_dropout(ctx, tr->sum.mem, tr->dropped.mem, B * readout, drop, batch->seed,
                                    p->first * readout));
        x = tr->dropped.mem;
    }
    if (m->fc_w)
        SNN_TRY(snn_op_linear(ctx, x, B, readout, m->fc_w->dev, snn_model_bias(m, m->fc_b), p->K, tr->logits.mem));
    else /* no readout layer: the summed spikes are the logits */
        SNN_TRY(snn_buffer_copy(ctx, x, 0, tr->logits.mem, 0, B * readout * FS));
    SNN_TRY(snn_op_softmax_xent(ctx, tr->logits.mem, tr->labels.mem, tr->loss.mem, tr->correct.mem,
                                tr->glogits.mem, B, p->K, tr->bad_label.mem));
    if (P == 2) {
        SNN_TRY(snn_op_lyapunov_finish(ctx, tr->sq.mem, tr->lambda.mem, p->L, T, B, p->eps));
        float global_mean;
        const int synced = snn_sync_active(tr);
        if (synced) SNN_TRY(snn_sync_estimate(tr, B, &global_mean));
        SNN_TRY(snn_op_lyapunov_grad(ctx, tr->sq.mem, tr->lambda.mem, tr->gdiv.mem, tr->lyap_out.mem, p->L, T, B,
                                     p->eps, p->lyap_weight, tr->cfg.lyap_target, synced ? &global_mean : NULL));
    }
    return SNN_OK;
}

static train_param *grad_of(snn_trainer *tr, const snn_param *param) {
    for (int i = 0; i < tr->num_train; i++)
        if (tr->train[i].p == param) return &tr->train[i];
    return NULL;
}

#define GRAD(param) (grad_of(tr, (param))->grad.mem)
#define GRAD_OR_NULL(param) ((param) ? GRAD(param) : NULL) /* an optional bias */

/* Backward through time of LIF layer l into scratch: d loss / d current (G, P, T, B*S),
 * or, when every step shares one input (Tz = 1, one trajectory), only its sum over
 * the steps (G, B*S); returns which in *summed. */
/* Both trajectories' backward of LIF layer l from recorded membranes (a: the rest). */
static snn_status lif_lyapunov_backward(snn_trainer *tr, const train_plan *p, int l, snn_lif_backward_args *a) {
    a->carry = tr->carry.mem;
    a->sq = tr->sq.mem;
    a->sq_off = (size_t)l * p->T * p->B;
    a->gdiv = tr->gdiv.mem;
    a->eps = p->eps;
    return snn_op_lif_lyapunov_backward(tr->ctx, a);
}

static snn_status lif_backward(snn_trainer *tr, const train_plan *p, const snn_batch *batch, int l, cl_mem z,
                               size_t Pz, size_t Tz, cl_mem scale, cl_mem shift, size_t G, size_t H, size_t W,
                               int pool, cl_mem gup, cl_mem unpooled, int *summed) {
    const size_t S = H * W;
    const snn_pool_geom *gp = &tr->model->layer[l].gpool;
    snn_lif_backward_args a = {0};
    a.buf = tr->scratch.mem;
    a.gup = gup;
    a.beta = snn_model_lif_beta(tr->model, l);
    a.thr = snn_model_lif_threshold(tr->model, l);
    a.reset = tr->model->layer[l].reset;
    a.sg_kind = tr->model->layer[l].sg_kind;
    a.sg = tr->model->layer[l].sg;
    a.G = G;
    a.S = S;
    a.B = p->B;
    a.T = p->T;
    a.H = H;
    a.W = W;
    a.pool = pool;
    *summed = 0;
    /* Any other pooling: its gradient spread back to the LIF's H x W first (unpooled), from
     * the recorded membranes for max pooling (which spikes won each window). */
    const size_t planes = G * p->P * p->T * p->B;
    if (gp->K && !gp->max) {
        SNN_TRY(snn_op_pool2d_backward(tr->ctx, gup, unpooled, planes, H, W, gp, NULL, 0.0f, p->P, p->T * p->B));
        a.gup = unpooled;
    }
    if (gp->K && gp->max) {
        SNN_TRY(run_lif(tr, p, batch, l, z, Pz, Tz, scale, shift, G, S, tr->scratch.mem, 1));
        SNN_TRY(snn_op_pool2d_backward(tr->ctx, gup, unpooled, planes, H, W, gp, tr->scratch.mem, a.thr, p->P,
                                       p->T * p->B));
        a.gup = unpooled;
        if (p->P == 1) return snn_op_lif_backward(tr->ctx, &a);
        return lif_lyapunov_backward(tr, p, l, &a);
    }
    if (p->P == 1 && p->T <= SNN_LIF_FUSED_MAX_T) {
        /* The forward is recomputed in registers: no membranes through memory. */
        snn_lif_args f = lif_args(tr, p, l, z, Pz, Tz, scale, shift, G, S, tr->scratch.mem);
        *summed = Tz == 1;
        return snn_op_lif_backward_fused(tr->ctx, &f, &a, tr->scratch.mem, *summed);
    }
    SNN_TRY(run_lif(tr, p, batch, l, z, Pz, Tz, scale, shift, G, S, tr->scratch.mem, 1));
    if (p->P == 1) return snn_op_lif_backward(tr->ctx, &a);
    return lif_lyapunov_backward(tr, p, l, &a);
}

static snn_status backward(snn_trainer *tr, const train_plan *p, const snn_batch *batch) {
    snn_model *m = tr->model;
    snn_context *ctx = tr->ctx;
    const size_t B = p->B, T = p->T, P = p->P, N = P * T * B;
    const snn_layer *last = &m->layer[m->num_layers - 1];
    const size_t readout = m->readout;
    const float drop = m->cfg.dropout;

    /* Readout: logits = fc(dropout(sum)). */
    cl_mem x = drop > 0.0f ? tr->dropped.mem : tr->sum.mem;
    if (m->fc_w)
        SNN_TRY(snn_op_linear_backward(ctx, x, B, readout, m->fc_w->dev, p->K, tr->glogits.mem, GRAD(m->fc_w),
                                       GRAD_OR_NULL(m->fc_b), tr->gsum.mem));
    else
        SNN_TRY(snn_buffer_copy(ctx, tr->glogits.mem, 0, tr->gsum.mem, 0, B * readout * FS));
    if (drop > 0.0f) SNN_TRY(snn_op_dropout(ctx, tr->gsum.mem, tr->gsum.mem, B * readout, drop, batch->seed,
                                    p->first * readout));

    int cur = 0; /* gup[cur]: gradient at the output of the layer being processed */
    SNN_TRY(snn_op_spike_sum_backward(ctx, tr->gsum.mem, tr->gup[0].mem, last->G, P, T, B, last->out_hw));
    for (int i = m->num_layers - 1; i >= 0; i--) {
        snn_layer *c = &m->layer[i];
        train_layer *l = &tr->layer[i];
        int summed;
        if (c->kind == SNN_STAGE_DENSE) {
            /* The input gradient, as rows, back into the layout of the layer before. */
            const snn_layer *prev = &m->layer[i - 1];
            SNN_TRY(lif_backward(tr, p, batch, i, l->z.mem, P, T, c->scale, c->shift, 1, 1, c->cout, 0,
                                 tr->gup[cur].mem, NULL, &summed));
            SNN_TRY(snn_op_linear_backward(ctx, l->in.mem, N, c->cin, c->weight->dev, c->cout, tr->scratch.mem,
                                           GRAD(c->weight), GRAD_OR_NULL(c->bias), tr->gup[1 - cur].mem));
            SNN_TRY(snn_op_unflatten_rows(ctx, tr->gup[1 - cur].mem, tr->gup[cur].mem, prev->G, N, prev->out_hw));
            continue;
        }
        layer_dims d = dims_of(m, p, i);
        cl_mem z = z_buffer(tr, i);
        if (i == 0 && m->num_layers > 1)
            SNN_TRY(snn_op_conv2d_at(ctx, (snn_images){l->in.mem, d.Nz, 0}, d.Nz, &c->geom, c->weight->dev,
                                     (snn_images){z, d.Nz, 0}, &tr->ws));
        cl_mem scale, shift;
        conv_affine(tr, i, &scale, &shift);
        SNN_TRY(lif_backward(tr, p, batch, i, z, d.Pz, d.Tz, scale, shift, c->cout, c->H, c->W, c->pool,
                             tr->gup[cur].mem, tr->gup[1 - cur].mem, &summed));
        /* With one shared input (and so one set of statistics) BatchNorm's backward of
         * the summed gradient is the sum of the per-step backwards: run it once. */
        const size_t gP = summed ? 1 : P, gT = summed ? 1 : T;
        if (c->bn && snn_sync_active(tr))
            SNN_TRY(snn_sync_bn_backward(tr, i, tr->scratch.mem, z, gP, gT, d.Pz, d.Tz, B * d.HW, GRAD(c->bn_weight),
                                         GRAD(c->bn_bias)));
        else if (c->bn)
            SNN_TRY(snn_op_bn_backward(ctx, tr->scratch.mem, z, l->mean.mem, l->rstd.mem, c->bn_weight->dev,
                                       c->cout, gP, gT, d.Pz, d.Tz, B * d.HW, tr->partial.mem, GRAD(c->bn_weight),
                                       GRAD(c->bn_bias)));
        else if (c->bias) /* the bias's gradient: the current's, summed per channel */
            SNN_TRY(snn_op_sum_blocks(ctx, tr->scratch.mem, GRAD(c->bias), c->cout, gP * gT * B * d.HW, 1));
        cl_mem dz = tr->scratch.mem;
        if (!summed && d.Pz * d.Tz < P * T) {
            /* Trajectories (and, for direct encoding, steps) shared this convolution; its
             * output z is no longer needed and has exactly the summed gradient's size. */
            SNN_TRY(snn_op_sum_blocks(ctx, tr->scratch.mem, z, c->cout, (P * T) / (d.Pz * d.Tz), d.Tz * B * d.HW));
            dz = z;
        }
        cl_mem din = i > 0 ? tr->gup[1 - cur].mem : NULL;
        SNN_TRY(conv_backward(tr, c, l->in.mem, d, dz, z, GRAD(c->weight), din));
        cur = 1 - cur;
    }
    return SNN_OK;
}

snn_status snn_train_forward_backward(snn_trainer *tr, const snn_batch *batch, const train_plan *p) {
    SNN_TRY(reserve(tr, p));
    SNN_TRY(forward(tr, p, batch));
    return backward(tr, p, batch);
}
