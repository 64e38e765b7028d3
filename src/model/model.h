/* The model: a parameter table named as PyTorch's state_dict, the layer structure
 * derived from the config, device copies, and the forward pass's buffers. */
#ifndef SNNCL_MODEL_H
#define SNNCL_MODEL_H

#include "context.h"
#include "network.h"
#include "ops.h"
#include "tune.h"

#define SNN_MAX_PARAMS 128
/* vgg: two convolutions per block and its hidden dense layer */
#define SNN_MAX_LAYERS (2 * SNN_MAX_BLOCKS + 1)

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

/* ------------------------------------------------------------ layer plan -- *
 * A model is a list of spiking layers, each ending in one LIF layer, then a readout
 * (the last layer's spikes summed over time, dropout in training, a linear layer).
 * model.c lowers the model's network description (network.h; the presets expand to
 * one) to this list, the only place that reads the description's layers; every pass
 * walks it: eval forward (forward.c), spike records, training
 * forward and backward (train/backprop.c), memory planning, FLOP counts and the GEMM
 * tuner's shapes (plan.c). docs/guide.md says how to add a model or a layer kind. */
typedef enum snn_layer_kind {
    SNN_STAGE_CONV,  /* convolution, BatchNorm (if bn; else a bias, if any), LIF; 2x2 average pooling if pool */
    SNN_STAGE_DENSE, /* linear with bias on the flattened input, LIF */
} snn_layer_kind;

/* snnTorch Leaky's buffers. */
typedef struct snn_lif_params {
    snn_param *beta, *threshold, *graded, *reset_mechanism;
} snn_lif_params;

typedef struct snn_layer {
    snn_layer_kind kind;
    size_t cin, cout; /* conv: channels in and out; dense: features in, units out */
    size_t H, W;      /* conv: the convolution's output (the LIF's neurons); dense: 1 x cout */
    snn_conv_geom geom; /* conv: the convolution, from the previous output (geom.H, geom.W) to H x W */
    int pool;         /* conv: AvgPool2d(2) after the LIF (the fused fast path) */
    snn_pool_geom gpool; /* conv: any other pooling after the LIF (gpool.K 0: none) */
    size_t Hp, Wp;    /* conv: the output per channel after pooling (H, W without) */
    int bn;           /* conv: BatchNorm after the convolution (else the bias, if any, is the LIF's shift) */
    /* Neurons per sample: G groups of S (conv: cout channels of H*W; dense: one group
     * of cout units), as LIF kernels, the estimate's state and spike records see them.
     * The layer's output per image: G channels of out_hw values (pooled if pool). */
    size_t G, S, out_hw;
    snn_param *weight, *bias;                                     /* bias: NULL where there is none */
    snn_param *bn_weight, *bn_bias, *bn_mean, *bn_var, *bn_count; /* conv with bn only */
    float bn_momentum;                                            /* conv: running statistics' rate */
    snn_lif_params lif;
    unsigned reset, sg_kind;  /* the LIF's reset and surrogate (SNN_LIF_RESET_*, SNN_LIF_SURROGATE_*) */
    float sg;                 /* the surrogate's alpha or slope */
    /* The LIF input's affine in eval: BatchNorm folded (conv, owned), y = scale*x + shift;
     * without BatchNorm ones and the bias (conv, owned); the identity (dense: the model's
     * ones and zeros). */
    cl_mem scale, shift;
} snn_layer;

/* Device buffers of the forward pass, grown on demand and reused: a workspace. The
 * model has one (snn_model_forward); each snn_session has its own, so that several
 * threads can run one model. */
typedef struct snn_forward_buffers {
    snn_dbuf input, act, conv, spk, cur0, sum, logits, sq, lambda, perturb;
    snn_dbuf mem[SNN_MAX_LAYERS], delta[SNN_MAX_LAYERS];
    snn_workspace ws;
    snn_conv_diff diff; /* the estimate's sparse perturbed convolutions */
} snn_forward_buffers;
/* The GEMM workspace's limit (im2col columns of a chunk of images): 64 MiB, or a
 * quarter of the context's memory budget where that is smaller (ctx may be NULL:
 * a model built for its shapes only). */
size_t snn_forward_ws_limit(const snn_context *ctx);
void snn_forward_buffers_release(snn_forward_buffers *f);

/* A caller's workspace for inference on a model (include/snncl.h). */
struct snn_session {
    snn_model *model;
    snn_forward_buffers fwd;
};

struct snn_model {
    snn_context *ctx;
    snn_model_config cfg;     /* presets: as given; descriptions: derived (kind SNN_MODEL_NETWORK) */
    snn_network *net;         /* the description the layer plan was lowered from */
    snn_param params[SNN_MAX_PARAMS];
    int num_params;
    int num_layers;           /* layer l holds LIF layer l */
    snn_layer layer[SNN_MAX_LAYERS];
    size_t readout;           /* features summed over time into fc: the last layer's G * out_hw */
    snn_param *fc_w, *fc_b;   /* the readout's linear layer (NULL: the summed spikes are the logits;
                               * fc_b NULL: no bias) */
    cl_mem ones, zeros;       /* identity affine for dense LIF layers */
    cl_mem zero_vec;          /* zeros as long as the widest layer: the bias of layers without one */
    snn_forward_buffers fwd;
    size_t max_chunk_steps;   /* 0: chosen from device memory; tests force small chunks */
    int dense_perturbed;      /* estimate: perturbed trajectory convolved and pooled on its own, as
                               * training does (tests compare the sparse, fused eval path) */
    int device_newer;         /* a trainer changed the device copies; host tables are stale */
};

/* Validates cfg and lays out the structure and parameter table (host memory only). */
snn_status snn_model_build(snn_model **out, snn_context *ctx, const snn_model_config *cfg);
/* The same from a description (copied into the model); SNN_ERR_UNSUPPORTED names the
 * first layer the kernels cannot run. */
snn_status snn_model_build_network(snn_model **out, snn_context *ctx, const snn_network *net);
/* Creates or refreshes device copies and folded BatchNorm from the host tables. */
snn_status snn_model_upload(snn_model *model);
/* Validates a config (shared by create and load). */
snn_status snn_model_config_check(const snn_model_config *cfg);
/* The config of a model file: its metadata, with channels and class count read off
 * the tensors (no device needed; snn_model_config_check() is left to the caller). */
snn_status snn_model_config_from_safetensors(const snn_safetensors *st, snn_model_config *cfg);
snn_param *snn_model_param(snn_model *model, const char *name);
/* A model file's integer metadata `key` = s in lo..hi (SNN_ERR_FORMAT naming it otherwise). */
snn_status snn_meta_int(const char *key, const char *s, int lo, int hi, int *out);
/* Floats of a batch of B as the caller hands it in: (B, C, H, W), or (B, T, C, H, W)
 * when it comes encoded already (encoding none). */
size_t snn_model_input_elems(const snn_model *model, size_t B, snn_encoding encoding);
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

/* The largest number of floats one image of one time step occupies in any layer
 * (input, convolution output, flattened features), in double so that no product of
 * it with a batch size can wrap around: bounds every per-step buffer. */
double snn_model_widest_step(const snn_model *model);

/* The matrix products of one training step of `batch` samples, as the passes issue
 * them (each convolution's forward, weight and input gradient, with at most max_cols
 * columns; dense layers' and the readout's linear products), up to max of them into
 * out, for the GEMM tuner (plan.c). Returns how many. */
size_t snn_model_gemm_shapes(const snn_model *model, size_t batch, size_t max_cols, snn_gemm_shape *out,
                             size_t max);
/* The same for a configuration, without a device (the plan only). */
snn_status snn_config_gemm_shapes(const snn_model_config *cfg, size_t batch, size_t max_cols,
                                  snn_gemm_shape *out, size_t max, size_t *count);

/* A layer's bias on the device, or zeros where it has none. */
static inline cl_mem snn_model_bias(const snn_model *m, const snn_param *bias) {
    return bias ? bias->dev : m->zero_vec;
}

/* Clamped beta and the threshold of LIF layer l, as the kernels use them. */
float snn_model_lif_beta(const snn_model *model, int l);
float snn_model_lif_threshold(const snn_model *model, int l);

#endif
