/* The model: a parameter table named as PyTorch's state_dict, the layer structure
 * derived from the config, device copies, and the forward pass's buffers. */
#ifndef SNNCL_MODEL_H
#define SNNCL_MODEL_H

#include "context.h"
#include "ops.h"

#define SNN_MAX_PARAMS 128
#define SNN_MAX_CONVS (2 * SNN_MAX_BLOCKS)
#define SNN_MAX_LIFS (SNN_MAX_CONVS + 1)
#define SNN_VGG_HIDDEN 512

/* One state_dict entry. Float tensors live in `host` (authoritative, saved as F32);
 * int64 scalars in `i64`. Tensors used by kernels also have a device copy. */
typedef struct snn_param {
    char name[64];
    snn_dtype dtype;  /* SNN_F32 or SNN_I64 */
    int ndim;
    int64_t shape[4];
    size_t count;
    float *host;
    int64_t i64;
    cl_mem dev;
    int optional;     /* may be absent from a file (snnTorch bookkeeping buffers) */
} snn_param;

typedef struct snn_conv_layer {
    size_t cin, cout, H, W; /* H x W: input and output size (3x3, pad 1) */
    int pool;               /* AvgPool2d(2) after this layer's LIF */
    snn_param *weight, *bn_weight, *bn_bias, *bn_mean, *bn_var, *bn_count;
    cl_mem scale, shift;    /* BatchNorm folded for eval: y = scale*x + shift */
} snn_conv_layer;

typedef struct snn_lif_layer {
    snn_param *beta, *threshold, *graded, *reset_mechanism;
} snn_lif_layer;

/* Device buffers of the forward pass, grown on demand and reused. */
typedef struct snn_forward_buffers {
    cl_mem input, act, conv, spk, cur0, sum, logits, sq, lambda, perturb;
    size_t input_cap, act_cap, conv_cap, spk_cap, cur0_cap, sum_cap, logits_cap, sq_cap, lambda_cap,
        perturb_cap;
    cl_mem mem[SNN_MAX_LIFS], delta[SNN_MAX_LIFS];
    size_t mem_cap[SNN_MAX_LIFS], delta_cap[SNN_MAX_LIFS];
    snn_workspace ws;
    snn_conv_diff diff; /* the estimate's sparse perturbed convolutions */
} snn_forward_buffers;

struct snn_model {
    snn_context *ctx;
    snn_model_config cfg;
    snn_param params[SNN_MAX_PARAMS];
    int num_params;
    int num_convs;
    snn_conv_layer conv[SNN_MAX_CONVS];
    int num_lifs; /* conv LIFs, then vgg's dense LIF */
    snn_lif_layer lif[SNN_MAX_LIFS];
    size_t features;          /* flattened size after the conv stack */
    size_t out_h, out_w;      /* spatial size after the conv stack */
    snn_param *fc_w, *fc_b;   /* simple: fc; vgg: fc2 */
    snn_param *fc1_w, *fc1_b; /* vgg only */
    cl_mem ones, zeros;       /* identity affine for the dense LIF */
    snn_forward_buffers fwd;
    size_t max_chunk_steps;   /* 0: chosen from device memory; tests force small chunks */
    int dense_perturbed;      /* estimate: perturbed trajectory convolved and pooled on its own, as
                               * training does (tests compare the sparse, fused eval path) */
    int device_newer;         /* a trainer changed the device copies; host tables are stale */
};

/* Validates cfg and lays out the structure and parameter table (host memory only). */
snn_status snn_model_build(snn_model **out, snn_context *ctx, const snn_model_config *cfg);
/* Creates or refreshes device copies and folded BatchNorm from the host tables. */
snn_status snn_model_upload(snn_model *model);
/* Validates a config (shared by create and load). */
snn_status snn_model_config_check(const snn_model_config *cfg);
/* The config of a model file: its metadata, with channels and class count read off
 * the tensors (no device needed; snn_model_config_check() is left to the caller). */
snn_status snn_model_config_from_safetensors(const snn_safetensors *st, snn_model_config *cfg);
snn_param *snn_model_param(snn_model *model, const char *name);
/* After training: copies device parameters back to the host tables and refolds BatchNorm. */
snn_status snn_model_sync_host(snn_model *model);
/* Where snn_model_forward_run copies one sample's spikes: LIF layer l's go to out[l]
 * as bytes (T, neurons of the layer), as snn_model_record_spikes documents. */
typedef struct snn_spike_tap {
    int sample;          /* 0 <= sample < batch */
    uint8_t *const *out; /* one array per LIF layer */
} snn_spike_tap;

/* snn_model_forward, and with a tap (not NULL) also the tapped sample's spikes of every
 * LIF layer (the 2x2 pooling is then not fused into the LIF pass; results are the same). */
snn_status snn_model_forward_run(snn_model *m, const float *input, int batch, const snn_forward_params *params,
                                 float *logits, float *lyap_mean, float *lyap_per_sample, const snn_spike_tap *tap);

/* Clamped beta and the threshold of LIF layer l, as the kernels use them. */
float snn_model_lif_beta(const snn_model *model, int l);
float snn_model_lif_threshold(const snn_model *model, int l);

#endif
