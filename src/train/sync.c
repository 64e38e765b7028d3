/* Synchronized batch statistics: every BatchNorm layer of a training step normalizes
 * with the statistics of the global batch, the union of the shares of all processes
 * that step together, and the Lyapunov regularizer squares the global batch's mean
 * estimate, as one process with the whole batch would.
 *
 * Each BatchNorm layer sums over the processes twice per step, through the caller's
 * snn_sum_fn: in forward its moments, in backward its gradient sums; with the
 * estimate, one more sum between forward and backward gives its batch mean. A step
 * makes these sums in a fixed order (forward up the layers, the estimate, backward
 * down) with lengths that depend only on the model and the configuration, never on
 * the share: a process with an empty share, or one whose step failed, still makes
 * them (snn_sync_end_step), so no process waits for one that never comes. Every
 * sum's values[0] counts the processes that failed.
 *
 * Forward, per layer: [failed, share size B, B*R, then per (r, c) block of R x C:
 * n*mean, then M2 + n*mean^2] with n = the share's values per block and M2 the sum
 * of squared deviations; in double, the global mean and biased variance follow
 * (S1/N, S2/N - mean^2), exact up to rounding since each share's M2 is exact about
 * its own mean. Estimate: [failed, B, sum of the share's estimates]. Backward:
 * [failed, then per (block, c): w*sum(g), w*sum(g*xhat)] with w = share / global
 * batch, since each process's g is the gradient of its own share's mean loss; the
 * means to subtract go back divided by w*N (= n), in the share's scale. */
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "train.h"

int snn_sync_active(const snn_trainer *tr) { return tr->cfg.sync_batchnorm && tr->sync.fn; }

/* Values per (trajectory, step, channel) table of layer i: P*T*C. Every sum of the
 * layer has room for all of them, used or not, so that its length is the same
 * whether the first layer's statistics are shared across steps or not. */
static size_t slots(const snn_trainer *tr, int i) {
    return train_trajectories(&tr->cfg) * (size_t)tr->model->cfg.T * tr->model->layer[i].cout;
}
static size_t forward_len(const snn_trainer *tr, int i) { return 3 + 2 * slots(tr, i); }
static size_t backward_len(const snn_trainer *tr, int i) { return 1 + 2 * slots(tr, i); }

/* The layers with BatchNorm, in forward order; returns how many. */
static int bn_layers(const snn_trainer *tr, int *out) {
    int n = 0;
    for (int i = 0; i < tr->model->num_layers; i++)
        if (tr->model->layer[i].kind == SNN_STAGE_CONV && tr->model->layer[i].bn) out[n++] = i;
    return n;
}

/* The estimate's sum, between forward and backward, when the step has one. */
static int estimate_sums(const snn_trainer *tr) { return train_trajectories(&tr->cfg) == 2; }
enum { ESTIMATE_LEN = 3 };

/* The length of the step's k-th sum. */
static size_t sum_len(const snn_trainer *tr, int k) {
    int layers[SNN_MAX_LAYERS];
    const int n = bn_layers(tr, layers), e = estimate_sums(tr);
    if (k < n) return forward_len(tr, layers[k]);
    if (k < n + e) return ESTIMATE_LEN;
    return backward_len(tr, layers[2 * n + e - 1 - k]);
}

static int sums_per_step(const snn_trainer *tr) {
    int layers[SNN_MAX_LAYERS];
    return 2 * bn_layers(tr, layers) + estimate_sums(tr);
}

/* The step's next sum, of tr->sync.values[0..n) with values[0] this process's
 * failure flag (0 here). */
static snn_status sum(snn_trainer *tr, size_t n) {
    train_sync *s = &tr->sync;
    const double mine = s->values[0];
    const snn_status st = s->fn(s->user, s->values, n);
    s->done++;
    if (st != SNN_OK) {
        s->done = sums_per_step(tr); /* the processes' channel failed: no more sums */
        return snn_fail_context(st, "synchronized statistics: the sum over processes failed");
    }
    if (s->values[0] > mine)
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "synchronized statistics: another process failed this step (its own error says why)");
    return SNN_OK;
}

snn_status snn_sync_bn_stats(snn_trainer *tr, int i, cl_mem z, size_t R, size_t B, size_t HW) {
    snn_context *ctx = tr->ctx;
    train_sync *s = &tr->sync;
    const snn_layer *c = &tr->model->layer[i];
    train_layer *l = &tr->layer[i];
    const size_t C = c->cout, S = slots(tr, i), n = forward_len(tr, i);
    const double share = (double)B * (double)HW; /* values per block here */
    memset(s->values, 0, n * sizeof *s->values);
    if (B > 0) {
        SNN_TRY(snn_op_bn_moments(ctx, z, C, R, B * HW, tr->partial.mem));
        SNN_TRY(snn_buffer_read(ctx, tr->partial.mem, 0, 2 * R * C * sizeof(float), s->local));
        for (size_t k = 0; k < R * C; k++) {
            const double mean = s->local[2 * k], m2 = s->local[2 * k + 1];
            s->values[3 + k] = share * mean;
            s->values[3 + S + k] = m2 + share * mean * mean;
        }
    }
    s->values[1] = (double)B;
    s->values[2] = (double)(B * R);
    SNN_TRY(sum(tr, n));
    s->global_batch = s->values[1];
    if (s->global_batch == 0.0) return SNN_OK; /* every share empty: no statistics */
    /* An empty share learns R from the others (B*R summed over the shares / B). */
    s->rows = (size_t)(s->values[2] / s->global_batch + 0.5);
    if ((B > 0 && s->rows != R) || s->rows * C > S)
        return snn_fail(SNN_ERR_SHAPE, "synchronized BatchNorm: the processes' steps differ in shape (layer %d: %zu "
                        "tables here, %.3g on average)", i, R, s->values[2] / s->global_batch);
    const double N = s->global_batch * (double)HW;
    for (size_t k = 0; k < s->rows * C; k++) {
        const double mean = s->values[3 + k] / N, var = s->values[3 + S + k] / N - mean * mean;
        s->local[2 * k] = (float)mean;
        s->local[2 * k + 1] = (float)(var > 0.0 ? var : 0.0);
    }
    if (B == 0) return SNN_OK;
    SNN_TRY(snn_buffer_write(ctx, s->dev.mem, 0, 2 * R * C * sizeof(float), s->local));
    return snn_op_bn_tables(ctx, s->dev.mem, C, R, N, c->bn_weight->dev, c->bn_bias->dev, l->mean.mem, l->rstd.mem,
                            l->var_unbiased.mem, l->scale.mem, l->shift.mem);
}

snn_status snn_sync_empty_share(snn_trainer *tr) {
    train_sync *s = &tr->sync;
    const size_t P = train_trajectories(&tr->cfg), T = (size_t)tr->model->cfg.T;
    int layers[SNN_MAX_LAYERS];
    for (int j = 0, n = bn_layers(tr, layers); j < n; j++) {
        const int i = layers[j];
        snn_layer *c = &tr->model->layer[i];
        SNN_TRY(snn_sync_bn_stats(tr, i, NULL, 0, 0, c->S));
        if (s->global_batch == 0.0) continue;
        /* the running estimates move as on the other processes: global (mean, unbiased variance) */
        const size_t C = c->cout, blocks = s->rows * C;
        const double N = s->global_batch * (double)c->S;
        float *mean = s->local + s->cap, *var_unbiased = mean + blocks; /* the upper half */
        for (size_t k = 0; k < blocks; k++) {
            mean[k] = s->local[2 * k];
            var_unbiased[k] = N > 1.0 ? (float)(s->local[2 * k + 1] * (N / (N - 1.0))) : 0.0f;
        }
        SNN_TRY(snn_buffer_write(tr->ctx, s->dev.mem, 0, blocks * sizeof(float), mean));
        SNN_TRY(snn_buffer_write(tr->ctx, s->dev2.mem, 0, blocks * sizeof(float), var_unbiased));
        const size_t Pz = i == 0 ? 1 : P, Tz = s->rows / Pz; /* as backprop.c's dims_of */
        SNN_TRY(snn_op_bn_running_update(tr->ctx, s->dev.mem, s->dev2.mem, c->bn_mean->dev, c->bn_var->dev, C, P, T,
                                         Pz, Tz, c->bn_momentum));
        c->bn_count->i64 += (int64_t)(P * T);
        tr->model->device_newer = 1;
    }
    return SNN_OK;
}

snn_status snn_sync_estimate(snn_trainer *tr, size_t B, float *mean) {
    train_sync *s = &tr->sync;
    float *lambda = malloc(B * sizeof *lambda);
    if (!lambda) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "synchronized statistics: %zu estimates", B);
    const snn_status st = snn_buffer_read(tr->ctx, tr->lambda.mem, 0, B * sizeof(float), lambda);
    memset(s->values, 0, ESTIMATE_LEN * sizeof *s->values);
    s->values[1] = (double)B;
    for (size_t b = 0; st == SNN_OK && b < B; b++) s->values[2] += lambda[b];
    free(lambda);
    SNN_TRY(st);
    SNN_TRY(sum(tr, ESTIMATE_LEN));
    *mean = (float)(s->values[2] / s->values[1]);
    return SNN_OK;
}

snn_status snn_sync_bn_backward(snn_trainer *tr, int i, cl_mem g, cl_mem z, size_t P, size_t T, size_t Pz,
                                size_t Tz, size_t M, cl_mem dgamma, cl_mem dbeta) {
    snn_context *ctx = tr->ctx;
    train_sync *s = &tr->sync;
    const snn_layer *c = &tr->model->layer[i];
    train_layer *l = &tr->layer[i];
    const size_t C = c->cout, S = slots(tr, i), n = backward_len(tr, i), blocks = P * T * C;
    const double w = (double)(M / c->S) / s->global_batch; /* this share of the global batch (> 0 here) */
    SNN_TRY(snn_op_bn_backward_sums(ctx, g, z, l->mean.mem, l->rstd.mem, C, P, T, Pz, Tz, M, tr->partial.mem));
    SNN_TRY(snn_buffer_read(ctx, tr->partial.mem, 0, 2 * blocks * sizeof(float), s->local));
    memset(s->values, 0, n * sizeof *s->values);
    for (size_t k = 0; k < blocks; k++) {
        s->values[1 + k] = w * s->local[2 * k];
        s->values[1 + S + k] = w * s->local[2 * k + 1];
    }
    SNN_TRY(sum(tr, n));
    for (size_t k = 0; k < blocks; k++) { /* / (w * N) = / M, this share's values per block */
        s->local[2 * k] = (float)(s->values[1 + k] / (double)M);
        s->local[2 * k + 1] = (float)(s->values[1 + S + k] / (double)M);
    }
    SNN_TRY(snn_buffer_write(ctx, s->dev.mem, 0, 2 * blocks * sizeof(float), s->local));
    return snn_op_bn_backward_apply(ctx, g, z, l->mean.mem, l->rstd.mem, c->bn_weight->dev, C, P, T, Pz, Tz, M,
                                    s->dev.mem, tr->partial.mem, dgamma, dbeta);
}

snn_status snn_sync_end_step(snn_trainer *tr, snn_status st) {
    if (!tr || !snn_sync_active(tr)) return st;
    train_sync *s = &tr->sync;
    const int total = sums_per_step(tr);
    while (s->done < total) {
        const size_t n = sum_len(tr, s->done);
        memset(s->values, 0, n * sizeof *s->values);
        s->values[0] = st != SNN_OK;
        s->done++;
        if (s->fn(s->user, s->values, n) != SNN_OK) break;
    }
    s->done = 0;
    return st;
}

void snn_sync_release(train_sync *s) {
    free(s->values);
    free(s->local);
    snn_dbuf_release(&s->dev);
    snn_dbuf_release(&s->dev2);
    memset(s, 0, sizeof *s);
}

snn_status snn_trainer_set_sum(snn_trainer *tr, snn_sum_fn fn, void *user) {
    SNN_REQUIRE_ARG("snn_trainer_set_sum", tr);
    train_sync *s = &tr->sync;
    if (s->done != 0)
        return snn_fail(SNN_ERR_INVALID_ARG, "snn_trainer_set_sum: called from inside a step's sum");
    if (!fn) {
        s->fn = NULL;
        s->user = NULL;
        return SNN_OK;
    }
    size_t cap = 0;
    for (int k = 0, n = sums_per_step(tr); k < n; k++) cap = sum_len(tr, k) > cap ? sum_len(tr, k) : cap;
    if (cap > s->cap) {
        double *values = malloc(cap * sizeof *values);
        float *local = malloc(2 * cap * sizeof *local);
        if (!values || !local) {
            free(values);
            free(local);
            return snn_fail(SNN_ERR_OUT_OF_MEMORY, "snn_trainer_set_sum: %zu values", cap);
        }
        free(s->values);
        free(s->local);
        s->values = values;
        s->local = local;
        s->cap = cap;
    }
    SNN_TRY(snn_dbuf_reserve(tr->ctx, &s->dev, (cap ? cap : 1) * sizeof(float)));
    SNN_TRY(snn_dbuf_reserve(tr->ctx, &s->dev2, (cap ? cap : 1) * sizeof(float)));
    s->fn = fn;
    s->user = user;
    return SNN_OK;
}
