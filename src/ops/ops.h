/* Device operations: thin host wrappers that validate nothing the model has not
 * already checked, launch one or a few kernels of cl/, and never wait for them.
 * Activations are channel-major: (C, N, H, W) with N = images (trajectory, step, sample). */
#ifndef SNNCL_OPS_H
#define SNNCL_OPS_H

#include "context.h"

/* Scratch memory that grows on demand; `limit` bounds what one op may ask for. */
typedef struct snn_workspace {
    cl_mem buf;
    size_t cap;
    size_t limit;
} snn_workspace;

void snn_workspace_release(snn_workspace *ws);

/* ---- encoding (cl/encode.cl, src/ops/encode.c) ---- */
/* x (B, C, HW) -> out (C, T, B, HW) spikes for absolute steps t0 .. t0+T-1. */
snn_status snn_op_encode_rate(snn_context *ctx, cl_mem x, cl_mem out, size_t B, size_t C, size_t HW,
                              size_t T, size_t t0, float gain, uint64_t seed);
/* in (B, T_total, C, HW), steps t0 .. t0+T-1 -> out (C, T, B, HW). */
snn_status snn_op_to_channel_major(snn_context *ctx, cl_mem in, cl_mem out, size_t B, size_t T_total,
                                   size_t t0, size_t T, size_t C, size_t HW);
/* out (C, B, HW) = scale * N(0,1), from Philox stream `layer` of seed. */
snn_status snn_op_normal(snn_context *ctx, cl_mem out, size_t B, size_t C, size_t HW, unsigned layer,
                         float scale, uint64_t seed);
/* out (C, B, HW) = scale * in (B, C, HW). */
snn_status snn_op_scale_to_channel_major(snn_context *ctx, cl_mem in, cl_mem out, size_t B, size_t C,
                                         size_t HW, float scale);

/* ---- convolution (cl/im2col.cl + GEMM, src/ops/conv.c) ---- */
/* out (Cout, N, H, W) = conv3x3(in (C, N, H, W), weight (Cout, C, 3, 3)), stride 1, pad 1. */
snn_status snn_op_conv3x3(snn_context *ctx, cl_mem in, size_t C, size_t N, size_t H, size_t W,
                          cl_mem weight, size_t Cout, cl_mem out, snn_workspace *ws);

/* ---- LIF (cl/lif.cl, src/ops/lif.c) ---- */
typedef struct snn_lif_args {
    cl_mem in;            /* conv/linear output */
    size_t in_off;        /* element offset of (g=0, t=0, m=0) */
    size_t gstride;       /* between groups (channels) */
    size_t tstride;       /* between steps; 0 repeats one input */
    size_t p_off;         /* perturbed trajectory's input offset (0: shared input) */
    cl_mem scale, shift;  /* per-group affine (folded BatchNorm) */
    float beta, thr;
    cl_mem mem;           /* (G, M) state, kept across chunks */
    cl_mem delta;         /* (G, M) perturbed minus reference (estimate only) */
    cl_mem spk;           /* output spikes */
    size_t spk_gstride;   /* between groups in spk */
    size_t G, S, B, T;    /* groups, neurons per sample and group, batch, steps */
    size_t t0;            /* absolute step of the chunk's first step */
    cl_mem sq;            /* squared divergence per step, (T_total, B) from sq_off (estimate only) */
    size_t sq_off;
    float eps;
} snn_lif_args;

snn_status snn_op_lif_forward(snn_context *ctx, const snn_lif_args *a);
snn_status snn_op_lif_lyapunov(snn_context *ctx, const snn_lif_args *a);

/* ---- pooling (cl/pool.cl, src/ops/pool.c) ---- */
/* in (P, H, W) -> out (P, H/2, W/2). */
snn_status snn_op_avgpool2x2(snn_context *ctx, cl_mem in, cl_mem out, size_t P, size_t H, size_t W);

/* ---- readout (cl/readout.cl, src/ops/readout.c) ---- */
/* sum (B, C*hw) += spikes (C, [T, B], hw) summed over T; channels gstride apart. */
snn_status snn_op_spike_sum(snn_context *ctx, cl_mem in, cl_mem sum, size_t C, size_t T, size_t B,
                            size_t hw, size_t gstride);
/* (C, N, hw) -> (N, C*hw). */
snn_status snn_op_flatten_rows(snn_context *ctx, cl_mem in, cl_mem out, size_t C, size_t N, size_t hw);
/* out (rows, fout) = in (rows, fin) x weight (fout, fin)^T + bias (fout). */
snn_status snn_op_linear(snn_context *ctx, cl_mem in, size_t rows, size_t fin, cl_mem weight,
                         cl_mem bias, size_t fout, cl_mem out);

/* ---- Lyapunov estimate (cl/lyapunov.cl, src/ops/lyapunov.c) ---- */
/* lambda (B) from sq (L, T, B). */
snn_status snn_op_lyapunov_finish(snn_context *ctx, cl_mem sq, cl_mem lambda, size_t L, size_t T,
                                  size_t B, float eps);

#endif
