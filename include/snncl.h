/*
 * snncl — convolutional spiking neural networks with Lyapunov estimates on OpenCL.
 *
 * Conventions used throughout this header:
 *  - Every function that can fail returns an snn_status: SNN_OK (0) or a negative code.
 *    snn_status_str() names the code; snn_last_error() gives the detailed message of
 *    the last failure on the calling thread (which tensor, which shape, the build log).
 *  - Objects are opaque handles made by snn_<thing>_create/load and released by
 *    snn_<thing>_free, which accepts NULL.
 *  - Host arrays are float32, row-major, NCHW.
 *  - A context and everything made from it must be used by one thread at a time.
 */
#ifndef SNNCL_H
#define SNNCL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SNNCL_VERSION_MAJOR 0
#define SNNCL_VERSION_MINOR 1
#define SNNCL_VERSION_PATCH 0
#define SNNCL_VERSION_STRING "0.1.0"

#if defined(_WIN32) && defined(SNNCL_BUILDING_SHARED)
#define SNN_API __declspec(dllexport)
#elif defined(__GNUC__)
#define SNN_API __attribute__((visibility("default")))
#else
#define SNN_API
#endif

/* ------------------------------------------------------------------ status -- */

#define SNN_STATUS_LIST(X)                                                       \
    X(SNN_OK, 0, "success")                                                      \
    X(SNN_ERR_INVALID_ARG, -1, "invalid argument")                               \
    X(SNN_ERR_OUT_OF_MEMORY, -2, "out of memory")                                \
    X(SNN_ERR_NO_DEVICE, -3, "no such OpenCL device")                            \
    X(SNN_ERR_OPENCL, -4, "OpenCL call failed")                                  \
    X(SNN_ERR_BUILD, -5, "OpenCL program build failed")                          \
    X(SNN_ERR_IO, -6, "file input/output failed")                                \
    X(SNN_ERR_FORMAT, -7, "malformed file")                                      \
    X(SNN_ERR_SHAPE, -8, "shape mismatch")                                       \
    X(SNN_ERR_NOT_FOUND, -9, "not found")                                        \
    X(SNN_ERR_UNSUPPORTED, -10, "unsupported")                                   \
    X(SNN_ERR_GEMM, -11, "GEMM failed")

typedef enum snn_status {
#define SNN_STATUS_ENUM_(name, value, text) name = value,
    SNN_STATUS_LIST(SNN_STATUS_ENUM_)
#undef SNN_STATUS_ENUM_
} snn_status;

/* A short constant description of a status code ("shape mismatch"). */
SNN_API const char *snn_status_str(snn_status status);
/* The enum name of a status code ("SNN_ERR_SHAPE"). */
SNN_API const char *snn_status_name(snn_status status);
/* The detailed message of the last failed call on this thread; "" if none. */
SNN_API const char *snn_last_error(void);

/* Run-time version, to compare with SNNCL_VERSION_STRING at compile time. */
SNN_API const char *snn_version(void);

/* ----------------------------------------------------------------- logging -- */

typedef enum snn_log_level {
    SNN_LOG_ERROR = 0,
    SNN_LOG_WARN = 1,
    SNN_LOG_INFO = 2,
    SNN_LOG_DEBUG = 3
} snn_log_level;

typedef void (*snn_log_fn)(snn_log_level level, const char *message, void *user);

/* Route library messages to fn (NULL: the default, which prints warnings and errors
 * to stderr). Messages above max_level are dropped. Process-wide. */
SNN_API void snn_set_log_callback(snn_log_fn fn, void *user, snn_log_level max_level);

/* ----------------------------------------------------------------- devices -- */

typedef enum snn_device_type {
    SNN_DEVICE_CPU = 1,
    SNN_DEVICE_GPU = 2,
    SNN_DEVICE_ACCELERATOR = 4,
    SNN_DEVICE_OTHER = 8
} snn_device_type;

typedef struct snn_device_info {
    int index;                /* position in snncl's list of all devices */
    int platform_index;
    char name[256];
    char vendor[256];
    char platform[256];
    char driver_version[128];
    char device_version[128];  /* "OpenCL 3.0 ..." */
    char c_version[128];       /* "OpenCL C 1.2 ..." */
    snn_device_type type;
    unsigned compute_units;
    unsigned max_clock_mhz;
    uint64_t global_mem_bytes;
    uint64_t max_alloc_bytes;
    uint64_t local_mem_bytes;
    size_t max_work_group_size;
    int has_fp64;
    int has_fp16;
} snn_device_info;

/* Number of OpenCL devices on all platforms (0 is not an error). */
SNN_API snn_status snn_device_count(int *count);
SNN_API snn_status snn_device_get_info(int index, snn_device_info *info);

/* ----------------------------------------------------------------- context -- */

typedef struct snn_context snn_context;

typedef struct snn_context_params {
    /* Which device: NULL or "" means $SNNCL_DEVICE if set, else device 0.
     * A decimal number selects by index; anything else is a case-insensitive
     * substring of the device name, vendor or platform name. */
    const char *device;
    /* Options appended to the OpenCL program build (e.g. "-cl-fast-relaxed-math"
     * is NOT recommended: spikes are threshold comparisons). */
    const char *build_options;
    uint8_t reserved[64];
} snn_context_params;

SNN_API void snn_context_params_default(snn_context_params *params);
/* params may be NULL for the defaults. */
SNN_API snn_status snn_context_create(snn_context **out, const snn_context_params *params);
SNN_API void snn_context_free(snn_context *ctx);
SNN_API snn_status snn_context_device_info(const snn_context *ctx, snn_device_info *info);
/* Blocks until all queued device work is done. */
SNN_API snn_status snn_context_finish(snn_context *ctx);

/* ------------------------------------------------------------- safetensors -- */

#define SNN_MAX_DIMS 8

typedef enum snn_dtype {
    SNN_F32 = 0,
    SNN_F64 = 1,
    SNN_I64 = 2
} snn_dtype;

/* One tensor of a safetensors file, owned by its snn_safetensors. */
typedef struct snn_tensor {
    const char *name;
    snn_dtype dtype;
    int ndim;                       /* 0 for a scalar */
    int64_t shape[SNN_MAX_DIMS];
    const void *data;               /* little-endian host values, nbytes long */
    size_t nbytes;
} snn_tensor;

typedef struct snn_safetensors snn_safetensors;

SNN_API snn_status snn_safetensors_create(snn_safetensors **out);
/* Reads and validates a whole file (header JSON, dtypes, shapes, offsets). */
SNN_API snn_status snn_safetensors_read(snn_safetensors **out, const char *path);
/* Writes via a temporary file renamed into place, so an existing file is never left
 * half-written. Tensors keep the order they were added in. */
SNN_API snn_status snn_safetensors_write(const snn_safetensors *st, const char *path);
SNN_API void snn_safetensors_free(snn_safetensors *st);

SNN_API size_t snn_safetensors_count(const snn_safetensors *st);
SNN_API const snn_tensor *snn_safetensors_at(const snn_safetensors *st, size_t i);
SNN_API const snn_tensor *snn_safetensors_find(const snn_safetensors *st, const char *name);
/* Copies data (nbytes implied by dtype and shape). Replaces a tensor of the same name. */
SNN_API snn_status snn_safetensors_add(snn_safetensors *st, const char *name, snn_dtype dtype,
                                       int ndim, const int64_t *shape, const void *data);
/* Copies tensor `name` into out as float32, converting F64/I64. If ndim >= 0 the
 * tensor's shape must equal (ndim, shape); the error message names the tensor and
 * both shapes. */
SNN_API snn_status snn_safetensors_get_f32(const snn_safetensors *st, const char *name, int ndim,
                                           const int64_t *shape, float *out);

/* __metadata__: string keys and values. meta_get returns NULL when absent. */
SNN_API const char *snn_safetensors_meta_get(const snn_safetensors *st, const char *key);
SNN_API snn_status snn_safetensors_meta_set(snn_safetensors *st, const char *key, const char *value);
SNN_API size_t snn_safetensors_meta_count(const snn_safetensors *st);
SNN_API const char *snn_safetensors_meta_key(const snn_safetensors *st, size_t i);

/* ------------------------------------------------------------------ models -- */

#define SNN_MAX_BLOCKS 8

typedef enum snn_model_kind {
    SNN_MODEL_SIMPLE = 0, /* ConvLyapunovSNN: [conv-BN-LIF, avgpool] per channel entry, fc */
    SNN_MODEL_VGG = 1     /* VGGLyapunovSNN: 3 x [conv-BN-LIF x2, avgpool], fc1, LIF, fc2 */
} snn_model_kind;

typedef enum snn_encoding {
    SNN_ENCODING_RATE = 0,   /* Bernoulli(clamp(x * gain, 0, 1)) per step, from Philox */
    SNN_ENCODING_DIRECT = 1, /* x at every step */
    SNN_ENCODING_NONE = 2    /* the caller passes (B, T, C, H, W) */
} snn_encoding;

typedef struct snn_model_config {
    snn_model_kind kind;
    int in_channels, height, width, num_classes;
    int num_blocks;                /* simple: number of entries in channels; vgg: 3 */
    int channels[SNN_MAX_BLOCKS];  /* simple: output channels per block; vgg: 64,128,256 */
    int T;
    float beta, threshold;         /* used for every LIF layer of a new model */
    snn_encoding encoding;
    float encoding_gain;
    float dropout;
    uint8_t reserved[64];
} snn_model_config;

/* The seed's defaults for "simple" or "vgg" (32x32x3 input, 10 classes, T=25, ...). */
SNN_API snn_status snn_model_config_default(snn_model_config *cfg, const char *name);
SNN_API const char *snn_model_kind_name(snn_model_kind kind);
SNN_API const char *snn_encoding_name(snn_encoding enc);
SNN_API snn_status snn_encoding_parse(const char *name, snn_encoding *out);

typedef struct snn_model snn_model;

/* A new model initialized as the seed does (Kaiming-normal conv, Xavier-uniform
 * linear, zero biases, unit BN), drawn from init_seed. */
SNN_API snn_status snn_model_create(snn_model **out, snn_context *ctx, const snn_model_config *cfg,
                                    uint64_t init_seed);
/* A model from tensors named as the seed's PyTorch state_dict plus SPEC metadata. */
SNN_API snn_status snn_model_from_safetensors(snn_model **out, snn_context *ctx,
                                              const snn_safetensors *st);
SNN_API snn_status snn_model_load(snn_model **out, snn_context *ctx, const char *path);
/* The model's tensors (F32, I64 where PyTorch has int64) and metadata. */
SNN_API snn_status snn_model_to_safetensors(const snn_model *model, snn_safetensors **out);
SNN_API snn_status snn_model_save(const snn_model *model, const char *path);
SNN_API void snn_model_free(snn_model *model);

SNN_API snn_status snn_model_get_config(const snn_model *model, snn_model_config *cfg);
/* Number of LIF layers (simple: num_blocks, vgg: 7). */
SNN_API int snn_model_num_lif_layers(const snn_model *model);
/* Shape of LIF layer `layer`'s membrane for batch size B: (B,C,H,W) or (B,F). */
SNN_API snn_status snn_model_lif_shape(const snn_model *model, int layer, int batch, int *ndim,
                                       int64_t shape[4]);

typedef struct snn_forward_params {
    int lyapunov;          /* nonzero: also compute the Benettin estimate */
    float lyap_eps;        /* perturbation size (default 1e-4) */
    uint64_t seed;         /* rate encoding and, without `perturb`, the perturbation */
    /* Optional unit-scale initial perturbation, one host array per LIF layer in
     * forward order, each of snn_model_lif_shape(); NULL draws N(0,1) from seed. */
    const float *const *perturb;
    /* Nonzero: the input is already spikes (B, T, C, H, W), whatever the model's
     * encoding (a model with encoding none always takes that shape). */
    int pre_encoded;
    uint8_t reserved[64];
} snn_forward_params;

SNN_API void snn_forward_params_default(snn_forward_params *params);

/* Eval-mode forward pass on a batch.
 *  input:   (B, C, H, W) for rate/direct encoding, (B, T, C, H, W) for none or
 *           params->pre_encoded.
 *  logits:  (B, num_classes), written.
 *  lyap_mean, lyap_per_sample (B): written when params->lyapunov, may be NULL. */
SNN_API snn_status snn_model_forward(snn_model *model, const float *input, int batch,
                                     const snn_forward_params *params, float *logits,
                                     float *lyap_mean, float *lyap_per_sample);

#ifdef __cplusplus
}
#endif

#endif /* SNNCL_H */
