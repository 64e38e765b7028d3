/* The eval-mode forward pass, layer by layer over chunks of time steps.
 *
 * Within a chunk of Tc steps, every layer runs over all Tc steps before the next layer
 * starts: each convolution is one GEMM over (trajectory, step, sample) images and
 * each LIF layer one kernel that loops over the steps. This is exact because a LIF
 * layer's state at step t depends only on its own past and its input at t. Membranes
 * (and the perturbation's deltas) persist between chunks, so the chunk size only
 * bounds memory.
 *
 * With the Lyapunov estimate, the perturbed trajectory's convolutions are the
 * reference's plus conv3x3 of the (rarely nonzero) difference of the two trajectories'
 * input spikes, computed only where it is nonzero (snn_op_conv3x3_diff), and the LIF
 * pass pools both trajectories itself; training keeps the dense path. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "model.h"
#include "snncl_opencl.h"

void snn_forward_params_default(snn_forward_params *params) {
    if (!params) return;
    memset(params, 0, sizeof *params);
    params->lyap_eps = 1e-4f;
}

/* Sizes in elements for one forward pass with chunk length Tc. */
typedef struct forward_plan {
    size_t B, T, Tc, P, L;
    snn_encoding encoding;      /* the model's, or none for pre-encoded input */
    size_t act_step, conv_step; /* elements per time step of the chunk buffers */
    size_t readout;             /* features summed over time and fed to the last linear layer */
    cl_mem input;               /* the batch: the workspace's buffer, or the caller's (snncl_opencl.h) */
    snn_forward_buffers *f;     /* the workspace: the model's own, or a session's */
} forward_plan;

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* Elements of the workspace's buffers that do not scale with the chunk (all but act,
 * spk and conv; without the GEMM's columns), as reserve_buffers reserves them. */
static size_t fixed_elems(const snn_model *m, const forward_plan *p) {
    size_t n = snn_model_input_elems(m, p->B, p->encoding) + p->B * p->readout + p->B * (size_t)m->cfg.num_classes;
    if (p->encoding == SNN_ENCODING_DIRECT) n += m->layer[0].G * m->layer[0].S * p->B;
    for (size_t l = 0; l < p->L; l++) n += p->P * m->layer[l].G * m->layer[l].S * p->B; /* mem, delta */
    if (p->P == 2) n += p->L * p->T * p->B + p->B;                                         /* sq, lambda */
    return n;
}

static snn_status plan_forward(const snn_model *m, size_t B, const snn_forward_params *fp,
                               forward_plan *p) {
    const snn_model_config *cfg = &m->cfg;
    const int lyapunov = fp->lyapunov;
    memset(p, 0, sizeof *p);
    p->encoding = fp->pre_encoded ? SNN_ENCODING_NONE : cfg->encoding;
    p->B = B;
    p->T = (size_t)cfg->T;
    p->P = lyapunov ? 2 : 1;
    p->L = (size_t)m->num_layers;
    const snn_device_info *dev = &m->ctx->info;
    /* The sizes below are products that can wrap around for absurd batches; one time
     * step of the widest layer must fit one allocation, which bounds them all. */
    double widest_step = snn_model_widest_step(m) * (double)p->P * (double)B * sizeof(float);
    if (widest_step > (double)dev->max_alloc_bytes)
        return snn_fail(SNN_ERR_OUT_OF_MEMORY,
                        "batch %zu is too large for this device: one time step needs a buffer of %.0f bytes "
                        "(device limit %llu); use a smaller batch",
                        B, widest_step, (unsigned long long)dev->max_alloc_bytes);
    p->act_step = (size_t)cfg->in_channels * B * (size_t)cfg->height * (size_t)cfg->width;
    /* act and spk hold a layer's input and its LIF's spikes; conv the convolution's
     * output, or a dense layer's flattened input (and its linear output goes to spk). */
    for (int i = 0; i < m->num_layers; i++) {
        const snn_layer *l = &m->layer[i];
        const size_t pin = i == 0 ? 1 : p->P;
        p->act_step = max_sz(p->act_step, l->G * l->S * p->P * B);
        if (l->kind == SNN_STAGE_CONV)
            p->conv_step = max_sz(p->conv_step, l->G * l->S * pin * B);
        else
            p->conv_step = max_sz(p->conv_step, max_sz(l->cin, l->cout) * p->P * B);
    }
    p->readout = m->readout;
    /* Chunk length: the three chunk buffers within a budget, each within one allocation
     * and within 32-bit element indices (the kernels' arguments). */
    size_t budget = (size_t)(dev->global_mem_bytes / 4);
    if (budget > ((size_t)1 << 30)) budget = (size_t)1 << 30;
    size_t per_step = (2 * p->act_step + p->conv_step) * sizeof(float);
    if (m->ctx->memory_budget) { /* the whole workspace within the context's budget */
        const size_t fixed = fixed_elems(m, p) * sizeof(float) + m->fwd.ws.limit;
        if (m->ctx->memory_budget < fixed + per_step)
            return snn_fail(SNN_ERR_OUT_OF_MEMORY,
                            "batch %zu needs a workspace of at least %zu bytes (one time step at a time); the "
                            "context's memory budget is %zu bytes: use a smaller batch or a larger budget",
                            B, fixed + per_step, m->ctx->memory_budget);
        budget = m->ctx->memory_budget - fixed;
    }
    size_t widest = max_sz(p->act_step, p->conv_step), largest = widest * sizeof(float);
    size_t tc = budget / per_step;
    if (tc > dev->max_alloc_bytes / largest) tc = dev->max_alloc_bytes / largest;
    if (tc > (size_t)UINT32_MAX / widest) tc = UINT32_MAX / widest;
    if (tc > p->T) tc = p->T;
    if (m->max_chunk_steps && tc > m->max_chunk_steps) tc = m->max_chunk_steps;
    if (tc < 1) {
        if (largest > dev->max_alloc_bytes || widest > UINT32_MAX)
            return snn_fail(SNN_ERR_OUT_OF_MEMORY,
                            "batch %zu is too large for this device: one time step needs a buffer of "
                            "%zu bytes (device limit %llu); use a smaller batch",
                            B, largest, (unsigned long long)dev->max_alloc_bytes);
        tc = 1;
    }
    p->Tc = tc;
    return SNN_OK;
}

/* The pass's buffers but the input's (the caller's may serve). */
static snn_status reserve_buffers(const snn_model *m, const forward_plan *p) {
    snn_context *ctx = m->ctx;
    snn_forward_buffers *f = p->f;
    const size_t fs = sizeof(float);
    SNN_TRY(snn_dbuf_reserve(ctx, &f->act, p->act_step * p->Tc * fs));
    SNN_TRY(snn_dbuf_reserve(ctx, &f->spk, p->act_step * p->Tc * fs));
    SNN_TRY(snn_dbuf_reserve(ctx, &f->conv, p->conv_step * p->Tc * fs));
    SNN_TRY(snn_dbuf_reserve(ctx, &f->sum, p->B * p->readout * fs));
    SNN_TRY(snn_dbuf_reserve(ctx, &f->logits, p->B * (size_t)m->cfg.num_classes * fs));
    if (p->encoding == SNN_ENCODING_DIRECT) {
        const snn_layer *c = &m->layer[0];
        SNN_TRY(snn_dbuf_reserve(ctx, &f->cur0, c->G * c->S * p->B * fs));
    }
    for (size_t l = 0; l < p->L; l++) {
        int ndim;
        int64_t shape[4];
        SNN_TRY(snn_model_lif_shape(m, (int)l, (int)p->B, &ndim, shape));
        size_t n = 1;
        for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
        SNN_TRY(snn_dbuf_reserve(ctx, &f->mem[l], n * fs));
        SNN_TRY(snn_buffer_fill_zero(ctx, f->mem[l].mem, 0, n * fs));
        if (p->P == 2) SNN_TRY(snn_dbuf_reserve(ctx, &f->delta[l], n * fs));
    }
    if (p->P == 2) {
        SNN_TRY(snn_dbuf_reserve(ctx, &f->sq, p->L * p->T * p->B * fs));
        SNN_TRY(snn_dbuf_reserve(ctx, &f->lambda, p->B * fs));
    }
    return SNN_OK;
}

/* delta[l] = eps * n[l], in the layer's channel-major state layout. */
static snn_status init_perturbation(const snn_model *m, const forward_plan *p, const snn_forward_params *fp) {
    snn_forward_buffers *f = p->f;
    for (size_t l = 0; l < p->L; l++) {
        int ndim;
        int64_t shape[4];
        SNN_TRY(snn_model_lif_shape(m, (int)l, (int)p->B, &ndim, shape));
        size_t C = ndim == 4 ? (size_t)shape[1] : 1;
        size_t HW = ndim == 4 ? (size_t)(shape[2] * shape[3]) : (size_t)shape[1];
        if (fp->perturb) {
            size_t bytes = p->B * C * HW * sizeof(float);
            SNN_TRY(snn_dbuf_reserve(m->ctx, &f->perturb, bytes));
            SNN_TRY(snn_buffer_write(m->ctx, f->perturb.mem, 0, bytes, fp->perturb[l]));
            SNN_TRY(snn_op_scale_to_channel_major(m->ctx, f->perturb.mem, f->delta[l].mem, p->B, C, HW,
                                                  fp->lyap_eps));
        } else {
            SNN_TRY(snn_op_normal(m->ctx, f->delta[l].mem, p->B, C, HW, (unsigned)l, fp->lyap_eps, fp->seed, 0));
        }
    }
    return SNN_OK;
}

/* Exchanges two chunk buffers (handles and capacities). */
static void swap_buffers(snn_forward_buffers *f) {
    const snn_dbuf t = f->act;
    f->act = f->spk;
    f->spk = t;
}

/* The layer's parameters and state in a. */
static void run_lif_setup(const snn_model *m, const forward_plan *p, snn_lif_args *a, int layer) {
    a->beta = snn_model_lif_beta(m, layer);
    a->thr = snn_model_lif_threshold(m, layer);
    a->reset = m->layer[layer].reset;
    a->mem = p->f->mem[layer].mem;
    a->delta = p->f->delta[layer].mem;
    a->sq = p->f->sq.mem;
    a->sq_off = (size_t)layer * p->T * p->B;
}

/* One LIF layer over the chunk, with or without the perturbed trajectory. */
static snn_status run_lif(const snn_model *m, const forward_plan *p, snn_lif_args *a, int layer) {
    run_lif_setup(m, p, a, layer);
    return p->P == 2 ? snn_op_lif_lyapunov(m->ctx, a) : snn_op_lif_forward(m->ctx, a);
}

/* Copies sample tap->sample's spikes of one LIF layer over the chunk (spk: G groups
 * gstride apart, each (Tn, B, S), reference trajectory first) into tap->out[layer] as
 * bytes at [(t0 + t) * G*S + g*S + s]: one rectangular read of G x Tn rows of S floats. */
static snn_status tap_spikes(const snn_model *m, const forward_plan *p, const snn_spike_tap *tap, int layer,
                             cl_mem spk, size_t gstride, size_t G, size_t S, size_t t0, size_t Tn) {
    const size_t fs = sizeof(float), n = G * Tn * S;
    float *h = malloc(n * fs);
    if (!h) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "spike record of LIF layer %d (%zu floats)", layer, n);
    const size_t origin[3] = {(size_t)tap->sample * S * fs, 0, 0}, host_origin[3] = {0, 0, 0};
    const size_t region[3] = {S * fs, Tn, G};
    cl_int err = snn_fault_hit(SNN_FAULT_READ);
    if (err == CL_SUCCESS)
        err = clEnqueueReadBufferRect(m->ctx->queue, spk, CL_TRUE, origin, host_origin, region, p->B * S * fs,
                                      gstride * fs, S * fs, Tn * S * fs, h, 0, NULL, NULL);
    snn_count_host_sync(m->ctx, &m->ctx->host_reads);
    snn_status st = snn_cl_check(err, "clEnqueueReadBufferRect (spike record)");
    if (st == SNN_OK) {
        uint8_t *out = tap->out[layer];
        const size_t N = G * S;
        for (size_t g = 0; g < G; g++)
            for (size_t t = 0; t < Tn; t++)
                for (size_t s = 0; s < S; s++)
                    out[(t0 + t) * N + g * S + s] = h[(g * Tn + t) * S + s] > 0.5f;
    }
    free(h);
    return st;
}

/* Dense layer i over the chunk: its input (C, N, hw) in f->act.mem flattened to rows, the
 * linear layer, then its LIF, spikes (1, N, units) back in f->act. */
static snn_status dense_chunk(const snn_model *m, const forward_plan *p, int i, size_t t0, size_t Tn, float eps,
                              const snn_spike_tap *tap) {
    snn_context *ctx = m->ctx;
    snn_forward_buffers *f = p->f;
    const snn_layer *d = &m->layer[i];
    const snn_layer *prev = &m->layer[i - 1];
    const size_t B = p->B, P = p->P, N = P * Tn * B, U = d->cout;
    SNN_TRY(snn_op_flatten_rows(ctx, f->act.mem, f->conv.mem, prev->G, N, prev->out_hw));
    SNN_TRY(snn_op_linear(ctx, f->conv.mem, N, d->cin, d->weight->dev, snn_model_bias(m, d->bias), U, f->spk.mem));
    snn_lif_args a = {0};
    a.in = f->spk.mem;
    a.gstride = N * U;
    a.tstride = B * U;
    a.p_off = P == 2 ? Tn * B * U : 0;
    a.scale = d->scale;
    a.shift = d->shift;
    a.spk = f->act.mem;
    a.spk_gstride = N * U;
    a.G = 1;
    a.S = U;
    a.B = B;
    a.T = Tn;
    a.t0 = t0;
    a.eps = eps;
    SNN_TRY(run_lif(m, p, &a, i));
    if (tap) SNN_TRY(tap_spikes(m, p, tap, i, f->act.mem, a.spk_gstride, 1, U, t0, Tn));
    return SNN_OK;
}

/* Every layer over steps t0 .. t0+Tn-1, each over all Tn steps before the next; the
 * last layer's spikes summed into f->sum. Between layers f->act.mem holds the output
 * (C, P, Tn, B, hw) of the layer before. */
static snn_status forward_chunk(const snn_model *m, const forward_plan *p, size_t t0, size_t Tn,
                                const snn_forward_params *fp, float eps, const snn_spike_tap *tap) {
    const snn_encoding enc = p->encoding;
    snn_context *ctx = m->ctx;
    snn_forward_buffers *f = p->f;
    const snn_model_config *cfg = &m->cfg;
    const size_t B = p->B, P = p->P;
    const size_t C0 = (size_t)cfg->in_channels, HW0 = (size_t)cfg->height * (size_t)cfg->width;

    if (enc == SNN_ENCODING_RATE)
        SNN_TRY(snn_op_encode_rate(ctx, p->input, f->act.mem, B, C0, HW0, Tn, t0, cfg->encoding_gain, fp->seed, 0));
    else if (enc == SNN_ENCODING_NONE)
        SNN_TRY(snn_op_to_channel_major(ctx, p->input, f->act.mem, B, p->T, t0, Tn, C0, HW0));

    int premarked = 0; /* the last LIF pass flagged the next convolution's differing inputs */
    for (int i = 0; i < m->num_layers; i++) {
        const snn_layer *c = &m->layer[i];
        if (c->kind == SNN_STAGE_DENSE) {
            SNN_TRY(dense_chunk(m, p, i, t0, Tn, eps, tap));
            premarked = 0;
            continue;
        }
        const size_t HW = c->H * c->W, pin = i == 0 ? 1 : P;
        const int next_conv = i + 1 < m->num_layers && m->layer[i + 1].kind == SNN_STAGE_CONV;
        snn_lif_args a = {0};
        if (i == 0 && enc == SNN_ENCODING_DIRECT) {
            a.in = f->cur0.mem; /* the same input current at every step */
            a.gstride = B * HW;
            a.tstride = 0;
        } else {
            const size_t NB = Tn * B;
            int dense = 1;
            /* The perturbed trajectory's input spikes rarely differ from the reference's:
             * its convolution is the reference's plus a sparse difference, unless more
             * than 1/16 of the pixels need one (then the GEMM over both is cheaper). */
            if (pin == 2 && !m->dense_perturbed && snn_conv_is3x3(&c->geom)) {
                /* ent and val (slots x 9*cin each) within the workspace's limit */
                size_t slots = NB * HW / 16, fit = f->ws.limit / (c->cin * 9 * 2 * sizeof(float));
                SNN_TRY(snn_op_conv3x3_diff(ctx, f->act.mem, c->cin, 2 * NB, NB, NB, c->H, c->W, c->weight->dev,
                                            c->cout, slots < fit ? slots : fit, premarked, &f->diff, &dense));
            }
            premarked = 0;
            const size_t nconv = dense ? pin : 1;
            SNN_TRY(snn_op_conv2d_at(ctx, (snn_images){f->act.mem, pin * NB, 0}, nconv * NB, &c->geom, c->weight->dev,
                                     (snn_images){f->conv.mem, nconv * NB, 0}, &f->ws));
            a.in = f->conv.mem;
            a.gstride = nconv * NB * HW;
            a.tstride = B * HW;
            a.p_off = nconv == 2 ? NB * HW : 0;
            if (!dense) {
                a.dmap = f->diff.idx.mem;
                a.dx = f->diff.dx.mem;
                a.dx_gstride = f->diff.slots;
            }
        }
        a.scale = c->scale;
        a.shift = c->shift;
        a.spk = f->spk.mem;
        a.spk_gstride = P * Tn * B * HW;
        a.G = c->cout;
        a.S = HW;
        a.B = B;
        a.T = Tn;
        a.t0 = t0;
        a.eps = eps;
        if (c->pool && P == 1 && !tap) {
            /* Pooling fused into the LIF pass: pooled spikes straight to the next input. */
            run_lif_setup(m, p, &a, i);
            a.spk = f->act.mem;
            a.spk_gstride = Tn * B * c->out_hw;
            SNN_TRY(snn_op_lif_forward_pool(ctx, &a, c->H, c->W));
            continue;
        }
        if (c->pool && P == 2 && !tap && !m->dense_perturbed && c->H % 2 == 0 && c->W % 2 == 0) {
            /* Both trajectories pooled in the LIF pass (odd sizes leave neurons outside
             * every window, which still count in the divergence: unfused below). */
            run_lif_setup(m, p, &a, i);
            a.spk = f->act.mem;
            a.spk_gstride = 2 * Tn * B * c->out_hw;
            if (next_conv) {
                /* the next convolution's differing input pixels, flagged here */
                SNN_TRY(snn_conv_diff_marks(ctx, &f->diff, Tn * B * c->out_hw, &a.mark));
                premarked = 1;
            }
            SNN_TRY(snn_op_lif_lyapunov_pool(ctx, &a, c->H, c->W));
            continue;
        }
        SNN_TRY(run_lif(m, p, &a, i));
        if (tap) SNN_TRY(tap_spikes(m, p, tap, i, f->spk.mem, a.spk_gstride, c->cout, HW, t0, Tn));
        if (c->pool)
            SNN_TRY(snn_op_avgpool2x2(ctx, f->spk.mem, f->act.mem, c->cout * P * Tn * B, c->H, c->W));
        else if (c->gpool.K)
            SNN_TRY(snn_op_pool2d(ctx, f->spk.mem, f->act.mem, c->cout * P * Tn * B, c->H, c->W, &c->gpool));
        else
            swap_buffers(f);
    }

    const snn_layer *last = &m->layer[m->num_layers - 1];
    return snn_op_spike_sum(ctx, f->act.mem, f->sum.mem, last->G, Tn, B, last->out_hw, P * Tn * B * last->out_hw);
}

/* The model's device copies current (after a trainer's steps), once, whichever
 * thread comes first. */
static snn_status model_ready(snn_model *m) {
    SNN_LOCK(m->ctx);
    const snn_status st = snn_model_sync_host(m);
    SNN_UNLOCK(m->ctx);
    return st;
}

/* The checks every form of the pass makes; *params is replaced by defaults if NULL. */
static snn_status forward_check(const snn_model *m, int batch, const snn_forward_params **params,
                                snn_forward_params *defaults, const char *fn) {
    if (!m) return snn_fail(SNN_ERR_INVALID_ARG, "%s: model is NULL", fn);
    if (batch < 1) return snn_fail(SNN_ERR_INVALID_ARG, "%s: batch must be >= 1, got %d", fn, batch);
    if (!*params) {
        snn_forward_params_default(defaults);
        *params = defaults;
    }
    const snn_forward_params *fp = *params;
    if (fp->lyapunov && !(fp->lyap_eps > 0.0f && isfinite(fp->lyap_eps)))
        return snn_fail(SNN_ERR_INVALID_ARG, "%s: params->lyap_eps must be a positive finite number, got %g", fn,
                        (double)fp->lyap_eps);
    if (fp->perturb)
        for (int l = 0; l < m->num_layers; l++)
            if (!fp->perturb[l])
                return snn_fail(SNN_ERR_INVALID_ARG, "%s: params->perturb[%d] (LIF layer %d) is NULL", fn, l, l);
    return SNN_OK;
}

/* Enqueues the pass on p->input (a device buffer of snn_model_input_elems floats): the logits
 * are left in f->logits and, with the estimate, each sample's in f->lambda. Waits for
 * the device only where the context's sparse paths read densities back. */
static snn_status forward_enqueue(const snn_model *m, const forward_plan *p, const snn_forward_params *params,
                                  const snn_spike_tap *tap) {
    const snn_model_config *cfg = &m->cfg;
    snn_context *ctx = m->ctx;
    snn_forward_buffers *f = p->f;
    SNN_TRY(snn_buffer_fill_zero(ctx, f->sum.mem, 0, p->B * p->readout * sizeof(float)));
    if (p->P == 2) SNN_TRY(init_perturbation(m, p, params));
    if (p->encoding == SNN_ENCODING_DIRECT) {
        /* Direct encoding feeds x at every step: the first convolution is computed once. */
        const snn_layer *c = &m->layer[0];
        SNN_TRY(snn_op_to_channel_major(ctx, p->input, f->act.mem, p->B, 1, 0, 1, c->cin, c->geom.H * c->geom.W));
        SNN_TRY(snn_op_conv2d_at(ctx, (snn_images){f->act.mem, p->B, 0}, p->B, &c->geom, c->weight->dev,
                                 (snn_images){f->cur0.mem, p->B, 0}, &f->ws));
    }
    for (size_t t0 = 0; t0 < p->T; t0 += p->Tc) {
        size_t Tn = p->T - t0 < p->Tc ? p->T - t0 : p->Tc;
        SNN_TRY(forward_chunk(m, p, t0, Tn, params, params->lyap_eps, tap));
    }
    /* Eval mode: dropout is the identity. */
    if (!m->fc_w) /* no readout layer: the summed spikes are the logits */
        SNN_TRY(snn_buffer_copy(ctx, f->sum.mem, 0, f->logits.mem, 0, p->B * p->readout * sizeof(float)));
    else
        SNN_TRY(snn_op_linear(ctx, f->sum.mem, p->B, p->readout, m->fc_w->dev, snn_model_bias(m, m->fc_b),
                          (size_t)cfg->num_classes, f->logits.mem));
    if (p->P == 2) SNN_TRY(snn_op_lyapunov_finish(ctx, f->sq.mem, f->lambda.mem, p->L, p->T, p->B, params->lyap_eps));
    return SNN_OK;
}

/* The pass on host arrays, in workspace f; fn names the public function called. */
static snn_status forward_host(snn_model *m, snn_forward_buffers *f, const char *fn, const float *input, int batch,
                               const snn_forward_params *params, float *logits, float *lyap_mean,
                               float *lyap_per_sample, const snn_spike_tap *tap) {
    snn_forward_params defaults;
    SNN_TRY(forward_check(m, batch, &params, &defaults, fn));
    SNN_REQUIRE_ARG(fn, input);
    SNN_REQUIRE_ARG(fn, logits);

    SNN_TRY(model_ready(m));
    forward_plan p;
    SNN_TRY(plan_forward(m, (size_t)batch, params, &p));
    p.f = f;
    const size_t in_bytes = snn_model_input_elems(m, p.B, p.encoding) * sizeof(float);
    snn_context *ctx = m->ctx;
    SNN_TRY(snn_dbuf_reserve(ctx, &f->input, in_bytes));
    SNN_TRY(reserve_buffers(m, &p));
    SNN_TRY(snn_buffer_write(ctx, f->input.mem, 0, in_bytes, input));
    p.input = f->input.mem;
    SNN_TRY(forward_enqueue(m, &p, params, tap));
    SNN_TRY(snn_buffer_read(ctx, f->logits.mem, 0, p.B * (size_t)m->cfg.num_classes * sizeof(float), logits));
    if (p.P == 2) {
        float *lam = malloc(p.B * sizeof(float));
        if (!lam) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "lyapunov results");
        snn_status st = snn_buffer_read(ctx, f->lambda.mem, 0, p.B * sizeof(float), lam);
        if (st == SNN_OK) {
            double mean = 0;
            for (size_t b = 0; b < p.B; b++) mean += lam[b];
            if (lyap_mean) *lyap_mean = (float)(mean / (double)p.B);
            if (lyap_per_sample) memcpy(lyap_per_sample, lam, p.B * sizeof(float));
        }
        free(lam);
        SNN_TRY(st);
    }
    return SNN_OK;
}

snn_status snn_model_forward(snn_model *m, const float *input, int batch, const snn_forward_params *params,
                             float *logits, float *lyap_mean, float *lyap_per_sample) {
    return snn_model_forward_run(m, input, batch, params, logits, lyap_mean, lyap_per_sample, NULL);
}

snn_status snn_model_forward_run(snn_model *m, const float *input, int batch, const snn_forward_params *params,
                                 float *logits, float *lyap_mean, float *lyap_per_sample, const snn_spike_tap *tap) {
    if (!m) return snn_fail(SNN_ERR_INVALID_ARG, "%s: model is NULL", tap ? "snn_model_record_spikes" : "snn_model_forward");
    return forward_host(m, &m->fwd, tap ? "snn_model_record_spikes" : "snn_model_forward", input, batch, params,
                        logits, lyap_mean, lyap_per_sample, tap);
}

/* The pass on device buffers, in workspace f. */
static snn_status forward_cl(snn_model *m, snn_forward_buffers *f, const char *fn, cl_mem input, size_t input_offset,
                             int batch, const snn_forward_params *params, cl_mem logits, size_t logits_offset,
                             cl_mem lyap_per_sample, size_t lyap_offset, cl_uint num_wait, const cl_event *wait_list,
                             cl_event *event) {
    snn_forward_params defaults;
    SNN_TRY(forward_check(m, batch, &params, &defaults, fn));
    SNN_TRY(snn_wait_list_check(num_wait, wait_list, fn));
    forward_plan p;
    SNN_TRY(plan_forward(m, (size_t)batch, params, &p));
    p.f = f;
    snn_context *ctx = m->ctx;
    const size_t fs = sizeof(float), in_bytes = snn_model_input_elems(m, p.B, p.encoding) * fs;
    const size_t out_bytes = p.B * (size_t)m->cfg.num_classes * fs;
    if (input_offset > SIZE_MAX / fs || logits_offset > SIZE_MAX / fs || lyap_offset > SIZE_MAX / fs)
        return snn_fail(SNN_ERR_INVALID_ARG, "%s: an offset is beyond any buffer", fn);
    SNN_TRY(snn_caller_buffer(ctx, input, input_offset * fs, in_bytes, fn, "input"));
    SNN_TRY(snn_caller_buffer(ctx, logits, logits_offset * fs, out_bytes, fn, "logits"));
    if (params->lyapunov && lyap_per_sample)
        SNN_TRY(snn_caller_buffer(ctx, lyap_per_sample, lyap_offset * fs, p.B * fs, fn, "lyap_per_sample"));

    SNN_TRY(model_ready(m));
    if (input_offset) SNN_TRY(snn_dbuf_reserve(ctx, &f->input, in_bytes));
    SNN_TRY(reserve_buffers(m, &p));
    SNN_TRY(snn_enqueue_wait(ctx, num_wait, wait_list));
    p.input = input;
    if (input_offset) { /* the kernels take whole buffers: one device-side copy */
        SNN_TRY(snn_buffer_copy(ctx, input, input_offset * fs, f->input.mem, 0, in_bytes));
        p.input = f->input.mem;
    }
    SNN_TRY(forward_enqueue(m, &p, params, NULL));
    SNN_TRY(snn_buffer_copy(ctx, f->logits.mem, 0, logits, logits_offset * fs, out_bytes));
    if (p.P == 2 && lyap_per_sample)
        SNN_TRY(snn_buffer_copy(ctx, f->lambda.mem, 0, lyap_per_sample, lyap_offset * fs, p.B * fs));
    return snn_enqueue_marker(ctx, event);
}

/* *event is written only at the end: the caller may pass one variable as both its
 * wait list and the event to receive. */
static snn_status forward_cl_call(snn_model *m, snn_forward_buffers *f, const char *fn, cl_mem input,
                                  size_t input_offset, int batch, const snn_forward_params *params, cl_mem logits,
                                  size_t logits_offset, cl_mem lyap_per_sample, size_t lyap_offset, cl_uint num_wait,
                                  const cl_event *wait_list, cl_event *event) {
    const unsigned long syncs = m ? snn_host_syncs(m->ctx) : 0;
    const snn_status st = forward_cl(m, f, fn, input, input_offset, batch, params, logits, logits_offset,
                                     lyap_per_sample, lyap_offset, num_wait, wait_list, event);
    if (st != SNN_OK && event) *event = NULL;
    if (st == SNN_OK) snn_profile_device_call(m->ctx, syncs);
    return st;
}

snn_status snn_model_forward_cl(snn_model *m, cl_mem input, size_t input_offset, int batch,
                                const snn_forward_params *params, cl_mem logits, size_t logits_offset,
                                cl_mem lyap_per_sample, size_t lyap_offset, cl_uint num_wait,
                                const cl_event *wait_list, cl_event *event) {
    return forward_cl_call(m, m ? &m->fwd : NULL, "snn_model_forward_cl", input, input_offset, batch, params, logits,
                           logits_offset, lyap_per_sample, lyap_offset, num_wait, wait_list, event);
}

/* ---------------------------------------------------------------- sessions -- */

snn_status snn_session_create(snn_session **out, snn_model *model) {
    SNN_REQUIRE_ARG("snn_session_create", out);
    *out = NULL;
    SNN_REQUIRE_ARG("snn_session_create", model);
    snn_session *s = calloc(1, sizeof *s);
    if (!s) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "session");
    s->model = model;
    s->fwd.ws.limit = model->fwd.ws.limit;
    *out = s;
    return SNN_OK;
}

void snn_session_free(snn_session *s) {
    if (!s) return;
    clFinish(s->model->ctx->queue); /* its buffers may still be in use by enqueued work */
    snn_forward_buffers_release(&s->fwd);
    free(s);
}

snn_status snn_session_forward(snn_session *s, const float *input, int batch, const snn_forward_params *params,
                               float *logits, float *lyap_mean, float *lyap_per_sample) {
    SNN_REQUIRE_ARG("snn_session_forward", s);
    return forward_host(s->model, &s->fwd, "snn_session_forward", input, batch, params, logits, lyap_mean,
                        lyap_per_sample, NULL);
}

snn_status snn_session_forward_cl(snn_session *s, cl_mem input, size_t input_offset, int batch,
                                  const snn_forward_params *params, cl_mem logits, size_t logits_offset,
                                  cl_mem lyap_per_sample, size_t lyap_offset, cl_uint num_wait,
                                  const cl_event *wait_list, cl_event *event) {
    if (!s) {
        if (event) *event = NULL;
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_session_forward_cl: s is NULL");
    }
    return forward_cl_call(s->model, &s->fwd, "snn_session_forward_cl", input, input_offset, batch, params, logits,
                           logits_offset, lyap_per_sample, lyap_offset, num_wait, wait_list, event);
}

snn_status snn_session_release_buffers(snn_session *s) {
    SNN_REQUIRE_ARG("snn_session_release_buffers", s);
    SNN_TRY(snn_cl_check(clFinish(s->model->ctx->queue), "clFinish"));
    snn_forward_buffers_release(&s->fwd);
    s->fwd.ws.limit = s->model->fwd.ws.limit;
    return SNN_OK;
}

snn_status snn_model_release_buffers(snn_model *m) {
    SNN_REQUIRE_ARG("snn_model_release_buffers", m);
    SNN_TRY(snn_cl_check(clFinish(m->ctx->queue), "clFinish"));
    snn_forward_buffers_release(&m->fwd);
    m->fwd.ws.limit = snn_forward_ws_limit(m->ctx);
    return SNN_OK;
}

snn_status snn_model_workspace_bytes(const snn_model *m, int batch, const snn_forward_params *params, size_t *bytes) {
    const char *fn = "snn_model_workspace_bytes";
    SNN_REQUIRE_ARG(fn, bytes);
    *bytes = 0;
    snn_forward_params defaults;
    SNN_TRY(forward_check(m, batch, &params, &defaults, fn));
    forward_plan p;
    SNN_TRY(plan_forward(m, (size_t)batch, params, &p));
    /* The chunk buffers, the others, and the GEMM's columns at most. */
    *bytes = ((2 * p.act_step + p.conv_step) * p.Tc + fixed_elems(m, &p)) * sizeof(float) + m->fwd.ws.limit;
    return SNN_OK;
}
