/* Constants shared by the host (src/) and the kernels (cl/), each in one place. Plain
 * preprocessor definitions, valid in C and in OpenCL C: tools/embed_cl.py puts this
 * file first in the program the kernels are built from, and host files include it. */
#ifndef SNNCL_CONSTANTS_H
#define SNNCL_CONSTANTS_H

/* Philox4x32-10's multipliers and key increments (cl/philox.cl, src/core/rng.c). */
#define SNN_PHILOX_M0 0xD2511F53u
#define SNN_PHILOX_M1 0xCD9E8D57u
#define SNN_PHILOX_W0 0x9E3779B9u
#define SNN_PHILOX_W1 0xBB67AE85u

/* Philox streams (the counter's third word) keep independent uses of one seed apart:
 * rate encoding, the estimate's initial perturbation, dropout masks (kernels), and the
 * host's generator (weight initialization, shuffles: src/core/rng.c). */
#define SNN_STREAM_RATE 0u
#define SNN_STREAM_NORMAL 1u
#define SNN_STREAM_DROPOUT 2u
#define SNN_STREAM_HOST 0xC0FFEEu

/* A LIF layer's reset and surrogate as the kernels take them (cl/lif.cl): the values of
 * snn_reset and snn_surrogate (include/snncl.h; src/ops/ops.h checks they agree). */
#define SNN_LIF_RESET_SUBTRACT 0u
#define SNN_LIF_RESET_ZERO 1u
#define SNN_LIF_RESET_NONE 2u
#define SNN_LIF_SURROGATE_ATAN 0u
#define SNN_LIF_SURROGATE_FAST_SIGMOID 1u
#define SNN_LIF_SURROGATE_SIGMOID 2u

/* Register blocking of the native GEMM kernels (cl/gemm.cl): snn_k_gemm_cols computes
 * SNN_GEMM_RM rows x SNN_GEMM_CW columns (SNN_GEMM_CV float16 vectors) per work-item,
 * snn_k_gemm_dot SNN_GEMM_DI x SNN_GEMM_DJ of C. They follow the device's
 * vector registers: src/core/gemm.c chooses them when the program is built (passing
 * -D options) and sizes the launches by its choice; these are the defaults. */
#ifndef SNN_GEMM_RM
#define SNN_GEMM_RM 8
#endif
#ifndef SNN_GEMM_CV
#define SNN_GEMM_CV 2
#endif
#define SNN_GEMM_CW (16 * SNN_GEMM_CV)
#ifndef SNN_GEMM_DI
#define SNN_GEMM_DI 2
#endif
#ifndef SNN_GEMM_DJ
#define SNN_GEMM_DJ 8
#endif

/* The sparse convolutions (cl/conv_sparse.cl): output channels per work-item of
 * snn_k_conv3x3_sparse (SNN_SPARSE_CV float16 vectors), and pixels per work-item of
 * the nonzero count. */
#define SNN_SPARSE_CV 4
#define SNN_SPARSE_CW (16 * SNN_SPARSE_CV)
#define SNN_SPARSE_COUNT_PIXELS 256

/* The largest T of snn_k_lif_backward_fused, whose membranes live in registers. */
#define SNN_LIF_FUSED_MAX_T 32

#endif
