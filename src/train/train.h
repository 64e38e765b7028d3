/* Training: the trainer's state, and the training-mode forward and backward pass.
 *
 * Data flow of one step (layer by layer over all T steps, as in inference):
 *   forward:  per layer of the model's plan: a conv layer's z = conv(in) for every
 *             (trajectory, step, sample) image, batch statistics per (trajectory, step,
 *             channel), the LIF layer over all steps, pooling; a dense layer's z =
 *             linear(in) on flattened rows, its LIF layer. Then readout, dropout,
 *             linear, cross-entropy. Kept for backward: each layer's input `in` and
 *             output before the LIF `z`, the BN tables, the estimate's divergences.
 *   backward: per LIF layer in reverse, the membranes are recomputed from z (cheap,
 *             elementwise) into `scratch`, then one kernel runs backward through time
 *             (both trajectories and the renormalization), BatchNorm's backward, and
 *             the convolution's weight and input gradients as GEMMs.
 * With the estimate, the two trajectories' inputs to a convolution differ in few
 * pixels: the perturbed convolution is the reference's plus a sparse difference, and
 * the weight gradient dY X^T + dY_p X_p^T = (dY + dY_p) X^T + dY_p (X_p - X)^T is one
 * GEMM over the reference's images plus a sparse product (backprop.c), a third fewer
 * products per step; where the difference is dense both fall back to the full GEMMs. */
#ifndef SNNCL_TRAIN_H
#define SNNCL_TRAIN_H

#include "model.h"

/* What the forward keeps of one layer of the plan. */
typedef struct train_layer {
    snn_dbuf in;    /* conv: input activations (Cin, Pin, Tin, B, H, W); dense: input rows (P, T, B, Cin) */
    snn_dbuf z;     /* conv: convolution output (Cout, Pz, Tz, B, H, W); dense: linear output (P, T, B, Cout) */
    snn_dbuf mean, rstd, var_unbiased, scale, shift; /* conv: BatchNorm tables (Pz, Tz, Cout) */
} train_layer;

typedef struct train_param {
    snn_param *p;
    snn_dbuf grad, m, v; /* Adam: m, v; SGD: m is the momentum buffer */
} train_param;

/* Synchronized batch statistics (sync.c): the processes' sum, and where this step is
 * in its sequence of sums. */
typedef struct train_sync {
    snn_sum_fn fn;
    void *user;
    int done;            /* sums made this step */
    double global_batch; /* the global batch's size, from this step's first sum */
    size_t rows;         /* trajectories x steps with statistics of the layer summed last */
    double *values;      /* host: one sum's values (room for the longest) */
    float *local;        /* host: one layer's moments or gradient sums, then what goes back (2 x cap) */
    size_t cap;          /* elements of values: the longest sum */
    snn_dbuf dev, dev2;  /* the global statistics, or the means to subtract, on the device */
} train_sync;

/* Trajectories a step runs: the reference, and the perturbed one when the regularizer
 * is on (lyap_weight > 0; a warm-up only scales it). */
static inline size_t train_trajectories(const snn_train_config *cfg) { return cfg->lyap_weight > 0.0f ? 2 : 1; }

/* Shapes of one step. */
typedef struct train_plan {
    size_t B, T, P, L, K;
    size_t first;           /* the batch's first sample in the global batch (snn_batch.first) */
    snn_encoding encoding;  /* of the input as given (none when pre-encoded) */
    float eps;
    float lyap_weight;      /* this update's weight of the regularizer (after any warm-up) */
    /* The batch on the device (snncl_opencl.h), offsets in elements; NULL: upload the
     * snn_batch's host arrays. */
    cl_mem dev_input, dev_labels;
    size_t dev_input_off, dev_labels_off;
} train_plan;

struct snn_trainer {
    snn_model *model;
    snn_context *ctx;
    snn_train_config cfg;
    int num_train;
    train_param train[SNN_MAX_PARAMS];
    int64_t steps_done;
    float last_lr;

    train_layer layer[SNN_MAX_LAYERS];
    snn_dbuf input, labels, perturb;       /* host uploads */
    snn_dbuf mem, delta;                   /* LIF state of the layer being run */
    snn_dbuf scratch;                      /* forward spikes before pooling; backward membranes/gradients */
    snn_dbuf gup[2];                       /* gradients arriving at a layer's output (ping-pong) */
    snn_dbuf carry, partial;               /* backward-through-time state; BN partial sums */
    snn_dbuf sum, dropped, logits, glogits, gsum, loss, correct;
    snn_dbuf sq, lambda, gdiv, lyap_out, norms;
    snn_dbuf bad_label;                    /* an int: a device label was outside [0, classes) */
    /* Steps enqueued by snn_trainer_step_cl since the last snn_trainer_wait, and what
     * the wait needs to read the last one's figures. */
    int pending;
    train_plan pending_plan;
    float pending_lr;
    snn_workspace ws, ws2;
    snn_conv_diff diff;                    /* the perturbed convolutions as sparse differences */
    train_sync sync;
};


/* Forward and backward of one batch: gradients into tr->train[i].grad, running
 * statistics moved, per-sample loss/correct and the estimate left on the device. */
snn_status snn_train_forward_backward(snn_trainer *tr, const snn_batch *batch, const train_plan *p);

/* Synchronized batch statistics (sync.c): BatchNorm's, and the Lyapunov estimate's
 * batch mean. Whether this trainer's steps sum over processes. */
int snn_sync_active(const snn_trainer *tr);
/* In place of snn_op_bn_stats: the tables of conv layer i from the global batch's
 * statistics of z (Cout, R, B*HW). With B = 0 (an empty share) only the sum, which
 * leaves the global (mean, biased variance) pairs in tr->sync.local. */
snn_status snn_sync_bn_stats(snn_trainer *tr, int i, cl_mem z, size_t R, size_t B, size_t HW);
/* An empty share's step: the forward sums, and the running estimates moved by the
 * global statistics as every other process moves them. */
snn_status snn_sync_empty_share(snn_trainer *tr);
/* In place of snn_op_bn_backward: g (Cout, P, T, B*HW) in place with the global
 * batch's gradient means; arguments as snn_op_bn_backward's. */
snn_status snn_sync_bn_backward(snn_trainer *tr, int i, cl_mem g, cl_mem z, size_t P, size_t T, size_t Pz,
                                size_t Tz, size_t M, cl_mem dgamma, cl_mem dbeta);
/* After lyapunov_finish: the global batch's mean of the estimate (B = this share's
 * samples, their estimates in tr->lambda). */
snn_status snn_sync_estimate(snn_trainer *tr, size_t B, float *mean);
/* At the end of every step: the sums it still owes the others, flagged as a failure
 * when st is not SNN_OK (all of them when it failed before the first); returns st. */
snn_status snn_sync_end_step(snn_trainer *tr, snn_status st);
void snn_sync_release(train_sync *s);

#endif
