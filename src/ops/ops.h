/* Device operations: thin host wrappers that validate nothing the model has not
 * already checked, launch one or a few kernels of cl/, and never wait for them.
 * Activations are channel-major: (C, N, H, W) with N = images (trajectory, step, sample). */
#ifndef SNNCL_OPS_H
#define SNNCL_OPS_H

#include "context.h"
#include "snn_constants.h"

/* The sparse convolutions' buffers (cl/conv_sparse.cl), grown on demand: a chunk's
 * nonzero counts and per-pixel channel lists, the transposed weights or output
 * gradient. Sized per chunk like the im2col columns, and smaller than them. */
typedef struct snn_sparse_scratch {
    snn_dbuf part, cnt, ch, val, trans;
    unsigned long sparse_chunks, dense_chunks; /* which path the chunks took: for tests */
} snn_sparse_scratch;

/* Scratch memory that grows on demand; `limit` bounds what one op may ask for (the
 * im2col columns of a chunk of images; the sparse path's buffers stay below it). */
typedef struct snn_workspace {
    snn_dbuf buf;
    size_t limit;
    snn_sparse_scratch sparse;
} snn_workspace;

void snn_workspace_release(snn_workspace *ws);

/* Work-items of a kernel that draws one Philox block per work-item for n elements
 * starting at element e0 of the global batch (snn_block_first, cl/encode.cl): the
 * first block may begin up to 3 elements before the share. */
static inline size_t snn_philox_blocks(size_t n, size_t e0) { return (n + (e0 & 3) + 3) / 4; }

/* The Philox key of a 64-bit seed (low word first). */
static inline cl_uint2 snn_seed_key(uint64_t seed) {
    cl_uint2 key;
    key.s[0] = (cl_uint)(seed & 0xffffffffu);
    key.s[1] = (cl_uint)(seed >> 32);
    return key;
}

/* ---- encoding and the initial perturbation (cl/encode.cl, cl/perturb.cl, src/ops/encode.c) ---- */
/* The random draws (here, and dropout's) take e0: the index, in the global batch the
 * tensor is a share of, of its first element (0 alone), so that a share draws what the
 * global batch's samples draw. */
/* x (B, C, HW) -> out (C, T, B, HW) spikes for absolute steps t0 .. t0+T-1. */
snn_status snn_op_encode_rate(snn_context *ctx, cl_mem x, cl_mem out, size_t B, size_t C, size_t HW,
                              size_t T, size_t t0, float gain, uint64_t seed, size_t e0);
/* in (B, T_total, C, HW), steps t0 .. t0+T-1 -> out (C, T, B, HW). */
snn_status snn_op_to_channel_major(snn_context *ctx, cl_mem in, cl_mem out, size_t B, size_t T_total,
                                   size_t t0, size_t T, size_t C, size_t HW);
/* out (C, B, HW) = scale * N(0,1), from Philox stream `layer` of seed. */
snn_status snn_op_normal(snn_context *ctx, cl_mem out, size_t B, size_t C, size_t HW, unsigned layer,
                         float scale, uint64_t seed, size_t e0);
/* out (C, B, HW) = scale * in (B, C, HW). */
snn_status snn_op_scale_to_channel_major(snn_context *ctx, cl_mem in, cl_mem out, size_t B, size_t C,
                                         size_t HW, float scale);

/* ---- convolution (cl/im2col.cl + GEMM, cl/conv_sparse.cl; src/ops/conv.c) ---- */
/* Each chunk of images takes the sparse path (products of nonzero inputs only) when
 * the fraction of its inputs that are nonzero is at most ctx->sparse_density, else
 * im2col + GEMM; counting the nonzeros reads one number per chunk back (waits). */
/* Images in a channel-major buffer: channel c of image n at mem[((c*cstride + off + n) * H*W)]
 * (channels cstride images apart, from image off). */
typedef struct snn_images {
    cl_mem mem;
    size_t cstride, off;
} snn_images;

/* A convolution's geometry: C channels of H x W in, Cout of Ho x Wo out, a square
 * K x K kernel with stride and zero padding (Ho = (H + 2 pad - K) / stride + 1). */
typedef struct snn_conv_geom {
    size_t C, H, W, Cout, K, stride, pad, Ho, Wo;
} snn_conv_geom;

/* The seed's convolution, which the 3x3 kernels and the sparse paths below run. */
static inline int snn_conv_is3x3(const snn_conv_geom *g) {
    return g->K == 3 && g->stride == 1 && g->pad == 1;
}

/* out (Cout, N, Ho, Wo) images as laid out = conv(in (C, N, H, W)) with weight
 * (Cout, C, K, K): the 3x3 paths (snn_op_conv3x3_at) for 3x3/1/1, else im2col + GEMM
 * (in and out offsets count images of their own sizes). */
snn_status snn_op_conv2d_at(snn_context *ctx, snn_images in, size_t N, const snn_conv_geom *g, cl_mem weight,
                            snn_images out, snn_workspace *ws);
/* Its gradients, as snn_op_conv3x3_backward_at: dweight = beta * dweight + the weight
 * gradient (dweight NULL: none), din (its mem NULL: none) written. */
snn_status snn_op_conv2d_backward_at(snn_context *ctx, snn_images in, size_t N, const snn_conv_geom *g,
                                     cl_mem weight, snn_images dout, cl_mem dweight, float beta, snn_images din,
                                     snn_workspace *ws, snn_workspace *ws2);

/* out (Cout, N, H, W) = conv3x3(in (C, N, H, W), weight (Cout, C, 3, 3)), stride 1, pad 1. */
snn_status snn_op_conv3x3(snn_context *ctx, cl_mem in, size_t C, size_t N, size_t H, size_t W,
                          cl_mem weight, size_t Cout, cl_mem out, snn_workspace *ws);
/* The same on N images of in written to N images of out, each as laid out. */
snn_status snn_op_conv3x3_at(snn_context *ctx, snn_images in, size_t C, size_t N, size_t H, size_t W,
                             cl_mem weight, size_t Cout, snn_images out, snn_workspace *ws);
/* Gradients of that convolution from dout (Cout, N, H, W): dweight (Cout, C, 3, 3) is
 * written; din (C, N, H, W), if not NULL, too. ws2 holds the input-gradient columns. */
snn_status snn_op_conv3x3_backward(snn_context *ctx, cl_mem in, size_t C, size_t N, size_t H,
                                   size_t W, cl_mem weight, size_t Cout, cl_mem dout, cl_mem dweight,
                                   cl_mem din, snn_workspace *ws, snn_workspace *ws2);
/* The same on laid-out images: dweight = beta * dweight + the gradient (beta 0 or 1;
 * dweight NULL: none); din (its mem NULL: none) written. */
snn_status snn_op_conv3x3_backward_at(snn_context *ctx, snn_images in, size_t C, size_t N, size_t H, size_t W,
                                      cl_mem weight, size_t Cout, snn_images dout, cl_mem dweight, float beta,
                                      snn_images din, snn_workspace *ws, snn_workspace *ws2);
/* dweight = beta * dweight + the weight gradient of the convolution of the input
 * difference (the N images p_off further in in's buffer minus in's) with dout, on
 * the sparse path only: when any chunk's difference is denser than
 * ctx->sparse_density, *dense = 1 and nothing is computed (reads counts back). */
snn_status snn_op_conv3x3_wgrad_diff(snn_context *ctx, snn_images in, size_t p_off, size_t C, size_t N, size_t H,
                                     size_t W, size_t Cout, snn_images dout, cl_mem dweight, float beta,
                                     snn_workspace *ws, int *dense);

/* conv3x3 of both trajectories of the Lyapunov estimate as the reference's plus a
 * sparse difference (cl/conv_diff.cl): the convolution is linear and the trajectories'
 * input spikes rarely differ. Buffers grow on demand and persist between calls. */
typedef struct snn_conv_diff {
    snn_dbuf idx, mark, count, list, nnz; /* per pixel (idx: then a flag per image); the slot counter; per slot */
    snn_dbuf ent, val, dx;                /* the slots' nonzero input differences; their output */
    size_t slots;                       /* slots of the last call: dx is (Cout, slots) */
    size_t total_slots, dense_calls;    /* over all calls: what tests and profiling look at */
    size_t sparse_calls;                /* calls that took the sparse path */
    size_t wgrad_sparse, wgrad_dense;   /* training's weight gradients (src/train/backprop.c) by path */
} snn_conv_diff;

void snn_conv_diff_release(snn_conv_diff *d);
/* in (C, ..., N, H, W), channels cstride images apart, reference images first and
 * the perturbed ones p_off images further. Marks the output pixels whose 3x3 window
 * holds a differing input pixel; up to max_slots of them, d->dx[co*slots + k] gets
 * conv3x3(xp - x) at the pixel of slot k and d->idx (N*H*W ints) maps pixels to
 * slots (-1: no difference), followed by N ints flagging the images with a slot. More than max_slots (or none allowed): *dense = 1
 * and nothing else is computed. Reads one counter back (waits for the queue).
 * premarked: d->mark already flags the differing input pixels (snn_conv_diff_marks). */
snn_status snn_op_conv3x3_diff(snn_context *ctx, cl_mem in, size_t C, size_t cstride, size_t p_off, size_t N,
                               size_t H, size_t W, cl_mem weight, size_t Cout, size_t max_slots,
                               int premarked, snn_conv_diff *d, int *dense);
/* After snn_op_conv3x3_diff chose the sparse path: the perturbed output from the
 * reference's, z (Cout, ...) channels zstride elements apart, the reference's N*H*W
 * pixels first and the perturbed ones p_off elements further (cl/conv_diff.cl). */
snn_status snn_op_conv3x3_diff_apply(snn_context *ctx, const snn_conv_diff *d, cl_mem z, size_t zstride,
                                     size_t p_off, size_t NP, size_t Cout);
/* d->mark for NP input pixels, zeroed, for a producer of the input to flag (*mark). */
snn_status snn_conv_diff_marks(snn_context *ctx, snn_conv_diff *d, size_t NP, cl_mem *mark);
/* snn_op_conv3x3 on N images of in whose channels lie cstride images apart. */
snn_status snn_op_conv3x3_strided(snn_context *ctx, cl_mem in, size_t C, size_t cstride, size_t N, size_t H,
                                  size_t W, cl_mem weight, size_t Cout, cl_mem out, snn_workspace *ws);

/* The kernels' reset and surrogate numbers are the public enums' values. */
_Static_assert(SNN_LIF_RESET_SUBTRACT == (unsigned)SNN_RESET_SUBTRACT && SNN_LIF_RESET_ZERO == (unsigned)SNN_RESET_ZERO &&
                   SNN_LIF_RESET_NONE == (unsigned)SNN_RESET_NONE,
               "cl/snn_constants.h and snn_reset disagree");
_Static_assert(SNN_LIF_SURROGATE_ATAN == (unsigned)SNN_SURROGATE_ATAN &&
                   SNN_LIF_SURROGATE_FAST_SIGMOID == (unsigned)SNN_SURROGATE_FAST_SIGMOID &&
                   SNN_LIF_SURROGATE_SIGMOID == (unsigned)SNN_SURROGATE_SIGMOID,
               "cl/snn_constants.h and snn_surrogate disagree");

/* ---- LIF (cl/lif.cl, cl/lif_forward.cl, cl/lif_lyapunov.cl, cl/lif_backward.cl, src/ops/lif.c) ---- */
typedef struct snn_lif_args {
    cl_mem in;            /* conv/linear output */
    size_t in_off;        /* element offset of (g=0, t=0, m=0) */
    size_t gstride;       /* between groups (channels) */
    size_t tstride;       /* between steps; 0 repeats one input */
    size_t p_off;         /* perturbed trajectory's input offset (0: shared input) */
    cl_mem scale, shift;  /* affine per group: folded BatchNorm, or per-step batch statistics */
    size_t aff_tstride;   /* affine index g + t*aff_tstride (+ aff_pstride, perturbed); 0 in eval */
    size_t aff_pstride;
    float beta, thr;
    unsigned reset;       /* SNN_LIF_RESET_* (cl/lif.cl) */
    cl_mem mem;           /* (G, M) state, kept across chunks */
    cl_mem delta;         /* (G, M) perturbed minus reference (estimate only) */
    cl_mem spk;           /* output spikes */
    size_t spk_gstride;   /* between groups in spk */
    size_t G, S, B, T;    /* groups, neurons per sample and group, batch, steps */
    size_t t0;            /* absolute step of the chunk's first step */
    cl_mem sq;            /* squared divergence per step, (T_total, B) from sq_off (estimate only) */
    size_t sq_off;
    float eps;
    int record;           /* write membranes (and raw deltas) instead of spikes, for backward */
    /* lif_lyapunov in eval mode: the perturbed input as the sparse difference of
     * snn_op_conv3x3_diff (dmap its idx, dx its (G, dx_gstride) outputs); NULL: p_off */
    cl_mem dmap, dx;
    size_t dx_gstride;
    cl_mem mark;          /* lif_lyapunov_pool: flags pooled pixels whose spikes differ; NULL: none */
} snn_lif_args;

snn_status snn_op_lif_forward(snn_context *ctx, const snn_lif_args *a);
snn_status snn_op_lif_lyapunov(snn_context *ctx, const snn_lif_args *a);
/* lif_forward then 2x2 average pooling of the spikes, in one pass: a->spk receives the
 * pooled spikes (G, T, B, H/2, W/2) with a->spk_gstride between groups; a->S = H*W. */
snn_status snn_op_lif_forward_pool(snn_context *ctx, const snn_lif_args *a, size_t H, size_t W);
/* lif_lyapunov in eval mode (zero affine strides, no record) then 2x2 average pooling
 * of both trajectories' spikes, in one pass; H and W even. a->spk receives the pooled
 * spikes (G, 2, T, B, H/2, W/2) with a->spk_gstride between groups; a->S = H*W.
 * With a->mark, sets mark[(t*B + b)*H/2*W/2 + q] = 1 where the trajectories' pooled
 * spikes differ (in any group), as conv3x3_diff's first pass would. */
snn_status snn_op_lif_lyapunov_pool(snn_context *ctx, const snn_lif_args *a, size_t H, size_t W);

/* Backward through time of a LIF layer (cl/lif_backward.cl). buf (G, P, T, B*S): recorded
 * membranes (and raw deltas, P = 2) in, d loss / d current out. gup: gradient of the
 * layer's output (G, P, T, B, Ho, Wo), pooled 2x2 from H x W when pool is set. */
typedef struct snn_lif_backward_args {
    cl_mem buf, gup;
    float beta, thr;
    unsigned reset, sg_kind; /* SNN_LIF_RESET_*, SNN_LIF_SURROGATE_* (cl/lif.cl) */
    float sg;                /* the surrogate's alpha or slope */
    size_t G, S, B, T, H, W;
    int pool;
    /* two trajectories only */
    cl_mem carry;         /* scratch (2, G, B*S) */
    cl_mem sq;            /* the forward's squared divergences, this layer's (T, B) at sq_off */
    size_t sq_off;
    cl_mem gdiv;          /* (T, B) from snn_op_lyapunov_grad */
    float eps;
} snn_lif_backward_args;

snn_status snn_op_lif_backward(snn_context *ctx, const snn_lif_backward_args *a);
/* The largest T snn_op_lif_backward_fused takes: SNN_LIF_FUSED_MAX_T (snn_constants.h). */
/* One trajectory's backward with the forward recomputed on the fly from f (the
 * forward's arguments: in, offsets, affine, beta, thr, G, S, B, T): no recorded
 * membranes needed. out gets d loss / d cur (G, T, B*S), or with sum_t its sum over
 * the steps (G, B*S). b supplies gup, H, W and pool. */
snn_status snn_op_lif_backward_fused(snn_context *ctx, const snn_lif_args *f, const snn_lif_backward_args *b,
                                     cl_mem out, int sum_t);
snn_status snn_op_lif_lyapunov_backward(snn_context *ctx, const snn_lif_backward_args *a);

/* ---- BatchNorm in training mode (cl/batchnorm.cl, src/ops/batchnorm.c) ---- */
/* Per-(r, c) statistics of z (C, R, M) and the LIF affine; tables are (R, C). */
snn_status snn_op_bn_stats(snn_context *ctx, cl_mem z, size_t C, size_t R, size_t M, cl_mem gamma,
                           cl_mem beta, cl_mem mean, cl_mem rstd, cl_mem var_unbiased, cl_mem scale,
                           cl_mem shift);
snn_status snn_op_bn_running_update(snn_context *ctx, cl_mem mean, cl_mem var_unbiased,
                                    cl_mem running_mean, cl_mem running_var, size_t C, size_t P,
                                    size_t T, size_t Pz, size_t Tz, float momentum);
/* g (C, P, T, M) in place: d loss / d BN output -> d loss / d z; dgamma, dbeta written.
 * partial: scratch of 2*P*T*C floats. */
snn_status snn_op_bn_backward(snn_context *ctx, cl_mem g, cl_mem z, cl_mem mean, cl_mem rstd,
                              cl_mem gamma, size_t C, size_t P, size_t T, size_t Pz, size_t Tz,
                              size_t M, cl_mem partial, cl_mem dgamma, cl_mem dbeta);
/* Synchronized BatchNorm (statistics of all processes' batches), each half of the two
 * above split around the host's sum over processes:
 * forward: moments (R, C, 2) = (mean, sum of squared deviations) of each block of z,
 * then the tables from the global stats (R, C, 2) = (mean, biased variance) over N
 * values per block; backward: partial (P*T, C, 2) = the block's sum(g), sum(g * xhat),
 * then g in place from means (P*T, C, 2), the two means to subtract in this process's
 * scale, and dgamma, dbeta from its own partial. */
snn_status snn_op_bn_moments(snn_context *ctx, cl_mem z, size_t C, size_t R, size_t M, cl_mem moments);
snn_status snn_op_bn_tables(snn_context *ctx, cl_mem stats, size_t C, size_t R, double N, cl_mem gamma,
                            cl_mem beta, cl_mem mean, cl_mem rstd, cl_mem var_unbiased, cl_mem scale,
                            cl_mem shift);
snn_status snn_op_bn_backward_sums(snn_context *ctx, cl_mem g, cl_mem z, cl_mem mean, cl_mem rstd, size_t C,
                                   size_t P, size_t T, size_t Pz, size_t Tz, size_t M, cl_mem partial);
snn_status snn_op_bn_backward_apply(snn_context *ctx, cl_mem g, cl_mem z, cl_mem mean, cl_mem rstd,
                                    cl_mem gamma, size_t C, size_t P, size_t T, size_t Pz, size_t Tz, size_t M,
                                    cl_mem means, cl_mem partial, cl_mem dgamma, cl_mem dbeta);
/* out (C, X) = sum over r of in (C, R, X). */
snn_status snn_op_sum_blocks(snn_context *ctx, cl_mem in, cl_mem out, size_t C, size_t R, size_t X);

/* ---- pooling (cl/pool.cl, src/ops/pool.c) ---- */
/* in (P, H, W) -> out (P, H/2, W/2). */
snn_status snn_op_avgpool2x2(snn_context *ctx, cl_mem in, cl_mem out, size_t P, size_t H, size_t W);
/* Any square window K and stride, average or max (flooring): in (P, H, W) -> out (P, Ho, Wo). */
typedef struct snn_pool_geom {
    size_t K, stride, Ho, Wo;
    int max;
} snn_pool_geom;
snn_status snn_op_pool2d(snn_context *ctx, cl_mem in, cl_mem out, size_t P, size_t H, size_t W,
                         const snn_pool_geom *g);
/* Its input's gradient gin (P, H, W) from g (P, Ho, Wo). Max pooling routes each window's
 * gradient to its first spike, which it reads from a LIF's recorded membranes rec
 * (planes (G, traj, T, B), TB = T*B; with traj 2 the perturbed planes hold raw
 * differences, cl/lif_lyapunov.cl's record) against thr; average pooling reads neither. */
snn_status snn_op_pool2d_backward(snn_context *ctx, cl_mem g, cl_mem gin, size_t P, size_t H, size_t W,
                                  const snn_pool_geom *geom, cl_mem rec, float thr, size_t traj, size_t TB);

/* ---- readout (cl/spike_sum.cl, rows.cl, linear.cl, dropout.cl, softmax_xent.cl; src/ops/readout.c) ---- */
/* sum (B, C*hw) += spikes (C, [T, B], hw) summed over T; channels gstride apart. */
snn_status snn_op_spike_sum(snn_context *ctx, cl_mem in, cl_mem sum, size_t C, size_t T, size_t B,
                            size_t hw, size_t gstride);
/* (C, N, hw) -> (N, C*hw). */
snn_status snn_op_flatten_rows(snn_context *ctx, cl_mem in, cl_mem out, size_t C, size_t N, size_t hw);
/* out (rows, fout) = in (rows, fin) x weight (fout, fin)^T + bias (fout). */
snn_status snn_op_linear(snn_context *ctx, cl_mem in, size_t rows, size_t fin, cl_mem weight,
                         cl_mem bias, size_t fout, cl_mem out);

/* out = dropout(x) with the Philox mask of `seed` (rate p) from element e0 on; also its own backward. */
snn_status snn_op_dropout(snn_context *ctx, cl_mem x, cl_mem out, size_t n, float p, uint64_t seed, size_t e0);
/* gup (C, P, T, B, hw) = gsum (B, C*hw) on trajectory 0 at every step, 0 on trajectory 1. */
snn_status snn_op_spike_sum_backward(snn_context *ctx, cl_mem gsum, cl_mem gup, size_t C, size_t P,
                                     size_t T, size_t B, size_t hw);
/* (N, C*hw) -> (C, N, hw). */
snn_status snn_op_unflatten_rows(snn_context *ctx, cl_mem in, cl_mem out, size_t C, size_t N, size_t hw);
/* Gradients of snn_op_linear from dout (rows, fout): dweight, dbias (if not NULL) written; din
 * (rows, fin) too if not NULL. */
snn_status snn_op_linear_backward(snn_context *ctx, cl_mem in, size_t rows, size_t fin, cl_mem weight,
                                  size_t fout, cl_mem dout, cl_mem dweight, cl_mem dbias, cl_mem din);
/* Per-sample cross-entropy, correctness and d mean loss / d logits; labels int32.
 * A label outside [0, K) sets bad_label (an int) to 1 and zeroes its sample's figures. */
snn_status snn_op_softmax_xent(snn_context *ctx, cl_mem logits, cl_mem labels, cl_mem loss,
                               cl_mem correct, cl_mem grad, size_t B, size_t K, cl_mem bad_label);

/* ---- optimizers (cl/optim.cl, src/ops/optim.c) ---- */
snn_status snn_op_grad_sumsq(snn_context *ctx, cl_mem g, size_t n, cl_mem norms, size_t slot);
typedef struct snn_optim_args {
    float lr, beta1, beta2, eps, momentum, weight_decay;
    float bc1, bc2_sqrt; /* Adam bias corrections of this step */
    int first;           /* SGD: first step */
    cl_mem norms;        /* per-tensor squared norms for clipping */
    size_t num_norms;
    float max_norm;      /* 0: no clipping */
} snn_optim_args;
snn_status snn_op_adam_update(snn_context *ctx, cl_mem param, cl_mem grad, cl_mem m, cl_mem v, size_t n,
                              const snn_optim_args *a);
snn_status snn_op_sgd_update(snn_context *ctx, cl_mem param, cl_mem grad, cl_mem buf, size_t n,
                             const snn_optim_args *a);

/* ---- Lyapunov estimate (cl/lyapunov.cl, src/ops/lyapunov.c) ---- */
/* lambda (B) from sq (L, T, B). */
snn_status snn_op_lyapunov_finish(snn_context *ctx, cl_mem sq, cl_mem lambda, size_t L, size_t T,
                                  size_t B, float eps);
/* gdiv (T, B) for the loss term weight * (mean lambda - target)^2; out[0] = mean lambda.
 * mean: NULL, or the batch mean to use (the global batch's, for a share of it). */
snn_status snn_op_lyapunov_grad(snn_context *ctx, cl_mem sq, cl_mem lambda, cl_mem gdiv, cl_mem out,
                                size_t L, size_t T, size_t B, float eps, float weight, float target,
                                const float *mean);

#endif
