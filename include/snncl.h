/**
 * @file snncl.h
 * @brief snncl — convolutional spiking neural networks with Lyapunov estimates on OpenCL.
 *
 * Conventions used throughout this header:
 *  - Every function that can fail returns an ::snn_status: SNN_OK (0) or a negative code.
 *    snn_status_str() names the code; snn_last_error() gives the detailed message of
 *    the last failure on the calling thread (which tensor, which shape, the build log).
 *  - Objects are opaque handles made by `snn_<thing>_create`/`_load` and released by
 *    `snn_<thing>_free`, which accepts NULL.
 *  - Host arrays are float32, row-major, NCHW.
 *  - A model, a trainer or a run must be used by one thread at a time; several
 *    threads run one model through their own snn_session each. Separate contexts
 *    work in separate threads.
 *
 * The concepts (contexts, models and their files, batches, the Lyapunov estimate,
 * training, checkpoints, ownership) are explained in docs/guide.md; the exact
 * arithmetic is in docs/semantics.md.
 */
#ifndef SNNCL_H
#define SNNCL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SNNCL_VERSION_MAJOR 0 /**< Major version of this header; the shared library's soname follows it. */
#define SNNCL_VERSION_MINOR 1 /**< Minor version of this header. */
#define SNNCL_VERSION_PATCH 0 /**< Patch version of this header. */
/** The version of this header, "MAJOR.MINOR.PATCH"; compare with snn_version(). */
#define SNNCL_VERSION_STRING "0.1.0"

/**
 * @def SNN_API
 * @brief Marks a function the library exports (default visibility; dllexport when
 * building a Windows DLL). Nothing for a caller to do.
 */

#if defined(_WIN32) && defined(SNNCL_BUILDING_SHARED)
#define SNN_API __declspec(dllexport)
#elif defined(__GNUC__)
#define SNN_API __attribute__((visibility("default")))
#else
#define SNN_API
#endif

/* ------------------------------------------------------------------ status -- */

/**
 * @brief The status codes as an X-macro table: `X(name, value, text)` for every code,
 * `text` being what snn_status_str() returns. ::snn_status is generated from it; a
 * caller can use it to build its own tables (see ::snn_status for the list).
 */
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
    X(SNN_ERR_GEMM, -11, "GEMM failed")                                          \
    X(SNN_ERR_NUMERIC, -12, "non-finite value")

/**
 * @brief What a function that can fail returns: SNN_OK (0) or a negative code.
 *
 * The detailed message of the last failure on the calling thread is snn_last_error()
 * (which file, which tensor, which shape, the OpenCL build log).
 *
 * | Code                  | Value | snn_status_str()              | Returned when |
 * |-----------------------|------:|-------------------------------|---------------|
 * | SNN_OK                |     0 | "success"                     | the call succeeded |
 * | SNN_ERR_INVALID_ARG   |    -1 | "invalid argument"            | a NULL pointer, an index or size out of range, a bad configuration, an unknown name |
 * | SNN_ERR_OUT_OF_MEMORY |    -2 | "out of memory"               | a host or device allocation failed |
 * | SNN_ERR_NO_DEVICE     |    -3 | "no such OpenCL device"       | no device matches the selection, or a device index is out of range |
 * | SNN_ERR_OPENCL        |    -4 | "OpenCL call failed"          | an OpenCL call failed (the message names it and its error code) |
 * | SNN_ERR_BUILD         |    -5 | "OpenCL program build failed" | the kernels did not build for the device (the message holds the build log) |
 * | SNN_ERR_IO            |    -6 | "file input/output failed"    | a file is missing or cannot be read or written |
 * | SNN_ERR_FORMAT        |    -7 | "malformed file"              | a file's contents are malformed (bad header, metadata, sizes) |
 * | SNN_ERR_SHAPE         |    -8 | "shape mismatch"              | a tensor has a different shape from the one required |
 * | SNN_ERR_NOT_FOUND     |    -9 | "not found"                   | a required tensor is missing from a file |
 * | SNN_ERR_UNSUPPORTED   |   -10 | "unsupported"                 | valid input that snncl does not handle (a dtype, too many dimensions or blocks, another reset mechanism) |
 * | SNN_ERR_GEMM          |   -11 | "GEMM failed"                 | a matrix multiplication through CLBlast failed |
 * | SNN_ERR_NUMERIC       |   -12 | "non-finite value"            | parameters or optimizer state became inf or nan (a diverging run) |
 */
typedef enum snn_status {
#define SNN_STATUS_ENUM_(name, value, text) name = value,
    SNN_STATUS_LIST(SNN_STATUS_ENUM_)
#undef SNN_STATUS_ENUM_
} snn_status;

/** A short constant description of a status code ("shape mismatch"); "unknown status"
 * for a value that is not a code. */
SNN_API const char *snn_status_str(snn_status status);
/** The enum name of a status code ("SNN_ERR_SHAPE"); "SNN_UNKNOWN" for a value that is
 * not a code. */
SNN_API const char *snn_status_name(snn_status status);
/** The detailed message of the last failed call on this thread; "" if none. The
 * string belongs to the thread and is overwritten by its next failure. */
SNN_API const char *snn_last_error(void);
/** The OpenCL error code (CL_OUT_OF_RESOURCES, ...) or CLBlast status code behind this
 * thread's last failure, when it was a failed OpenCL or CLBlast call (SNN_ERR_OPENCL,
 * SNN_ERR_GEMM, or SNN_ERR_OUT_OF_MEMORY from the device); 0 when the last failure was
 * of another kind or there was none. CLBlast's codes above -1000 are OpenCL's. */
SNN_API int snn_last_cl_error(void);

/** Records `message` as this thread's snn_last_error() and returns `status`: for
 * code built on snncl (an extension such as libsnncl_mpi, a wrapper) that reports its
 * own failures the way snncl's functions do. A NULL message records "". */
SNN_API snn_status snn_report_error(snn_status status, const char *message);

/** Run-time version, to compare with #SNNCL_VERSION_STRING at compile time. */
SNN_API const char *snn_version(void);

/* ----------------------------------------------------------------- logging -- */

/** Severity of a library message; higher is more verbose. */
typedef enum snn_log_level {
    SNN_LOG_ERROR = 0, /**< Something failed. */
    SNN_LOG_WARN = 1,  /**< Something works but not as asked (the default callback's limit). */
    SNN_LOG_INFO = 2,  /**< Choices worth knowing (the device and the GEMM path used). */
    SNN_LOG_DEBUG = 3  /**< Details, including every failure's message as it is set. */
} snn_log_level;

/** A log callback: receives each message at or below the chosen level, without a
 * trailing newline, and the `user` pointer given to snn_set_log_callback(). */
typedef void (*snn_log_fn)(snn_log_level level, const char *message, void *user);

/** Route library messages to fn (NULL: the default, which prints warnings and errors
 * to stderr). Messages above max_level are dropped. Process-wide: set it before
 * other threads use the library. */
SNN_API void snn_set_log_callback(snn_log_fn fn, void *user, snn_log_level max_level);

/* ----------------------------------------------------------------- devices -- */

/** Kind of an OpenCL device (CL_DEVICE_TYPE_*). */
typedef enum snn_device_type {
    SNN_DEVICE_CPU = 1,         /**< A CPU (PoCL, Intel's CPU runtime). */
    SNN_DEVICE_GPU = 2,         /**< A GPU. */
    SNN_DEVICE_ACCELERATOR = 4, /**< A dedicated accelerator. */
    SNN_DEVICE_OTHER = 8        /**< Anything else. */
} snn_device_type;

/** What snncl knows of an OpenCL device, as the OpenCL queries report it. */
typedef struct snn_device_info {
    /** position in snncl's list of all devices (-1: a device given to
     *  snn_context_create_cl() that the list lacks, such as a sub-device) */
    int index;
    int platform_index;       /**< position of its platform among all platforms */
    char name[256];           /**< device name */
    char vendor[256];         /**< device vendor */
    char platform[256];       /**< platform name ("Portable Computing Language", ...) */
    char driver_version[128]; /**< driver version */
    char device_version[128];  /**< "OpenCL 3.0 ..." */
    char c_version[128];       /**< "OpenCL C 1.2 ..." */
    snn_device_type type;      /**< CPU, GPU, accelerator or other */
    unsigned compute_units;    /**< compute units */
    unsigned max_clock_mhz;    /**< maximum clock frequency in MHz */
    uint64_t global_mem_bytes; /**< global memory size */
    uint64_t max_alloc_bytes;  /**< largest single buffer */
    uint64_t local_mem_bytes;  /**< local (work-group shared) memory size */
    size_t max_work_group_size; /**< largest work-group */
    int has_fp64;              /**< nonzero if the device supports double precision */
    int has_fp16;              /**< nonzero if the device supports half precision */
    uint8_t reserved[64];      /**< zero (room for future fields without breaking the ABI) */
} snn_device_info;

/** Zeroes every field (NULL is fine). The functions that describe a device fill all of
 * it; this is for callers that keep one before it is filled. */
SNN_API void snn_device_info_init(snn_device_info *info);

/** Number of OpenCL devices on all platforms (0 is not an error). */
SNN_API snn_status snn_device_count(int *count);
/** Describes device `index` (0 to count-1, in the order of snn_device_count());
 * SNN_ERR_NO_DEVICE when the index is out of range. */
SNN_API snn_status snn_device_get_info(int index, snn_device_info *info);

/* ----------------------------------------------------------------- context -- */

/** A device context: one OpenCL device, its command queue and snncl's kernels built
 * for it. Models, trainers and their device memory belong to a context, which must
 * outlive them. */
typedef struct snn_context snn_context;

/** How to create a context; fill with snn_context_params_default() first. */
typedef struct snn_context_params {
    /** Which device: NULL or "" means $SNNCL_DEVICE if set, else device 0.
     * A decimal number selects by index; anything else is a case-insensitive
     * substring of the device name, vendor or platform name. */
    const char *device;
    /** Options appended to the OpenCL program build (for example
     * "-cl-fast-relaxed-math", which is NOT recommended: spikes are threshold
     * comparisons). */
    const char *build_options;
    /** Matrix products: NULL or "" means $SNNCL_GEMM if set, else "auto" (a stored
     * `snncl tune` result for this device, else the device type's default);
     * "native" or "clblast" force one. snn_context_gemm_info() says which is used. */
    const char *gemm;
    /** Where tuning files live: NULL or "" means $SNNCL_CACHE_DIR, else
     * $XDG_CACHE_HOME/snncl, else $HOME/.cache/snncl. */
    const char *tuning_dir;
    /** Nonzero: read no environment variable (SNNCL_DEVICE, SNNCL_GEMM, SNNCL_TUNING,
     * SNNCL_PROFILE, SNNCL_CACHE_DIR, XDG_CACHE_HOME, HOME): only these fields count,
     * and a tuning file is used only where tuning_dir names its directory. */
    int ignore_environment;
    /** Nonzero: every convolution takes the dense path, whatever its input's density.
     * The sparse paths (the CPU default) choose per chunk of images by counting the
     * chunk's nonzero inputs on the device and reading the count back, so a call
     * waits for the device inside; dense-only calls never do (see snncl_opencl.h). */
    int dense_only;
    /** Nonzero: a stored tuning's CLBlast Xgemm parameters are handed to CLBlast
     * (CLBlastOverrideParameters). CLBlast keeps them per device for the whole
     * process, so they also change the program's own CLBlast calls on that device:
     * off by default; the snncl command line turns it on. */
    int clblast_tuning;
    /** Bytes a forward pass's workspace (a session's, or the model's own) may hold on
     * the device: the chunks of time steps are sized to fit, and a batch that cannot
     * fit one step is refused with SNN_ERR_OUT_OF_MEMORY. 0: a quarter of the device's
     * memory, at most 1 GiB, for the chunks. Training is not bounded by it. */
    size_t memory_budget;
    uint8_t reserved[24]; /**< zero (room for future fields without breaking the ABI) */
} snn_context_params;

/** Sets every field to its default: all zero, that is the default device, no
 * extra build options, the environment read, sparse paths where the device gains
 * from them and CLBlast's own parameters. */
SNN_API void snn_context_params_default(snn_context_params *params);
/** Opens the selected device and builds snncl's kernels for it (SNN_ERR_NO_DEVICE,
 * SNN_ERR_BUILD with the build log on failure). params may be NULL for the defaults. */
SNN_API snn_status snn_context_create(snn_context **out, const snn_context_params *params);
/** Waits for the device's queued work and releases the context; free its models
 * and trainers first. NULL is fine. */
SNN_API void snn_context_free(snn_context *ctx);
/** The description of the context's device, as snn_device_get_info() gives it. */
SNN_API snn_status snn_context_device_info(const snn_context *ctx, snn_device_info *info);
/** Blocks until all queued device work is done. */
SNN_API snn_status snn_context_finish(snn_context *ctx);
/** How the context computes matrix products: `impl` receives "clblast" or "native",
 *  `reason` why ("SNNCL_GEMM", "snncl tune" for a stored tuning of this device, or
 *  "device-type default"); either may be NULL. The strings are static. */
SNN_API snn_status snn_context_gemm_info(const snn_context *ctx, const char **impl, const char **reason);

/* ------------------------------------------------------------------- files -- */

/** A file being written atomically (snn_file_begin()): whoever reads PATH, and
 *  whatever crashes meanwhile, sees the old file or the whole new one, never a part.
 *  Every file snncl writes goes this way. */
typedef struct snn_file snn_file;
/** Creates PATH.tmp.PID for writing (exclusively; a leftover of an earlier process
 *  with this pid is replaced). Write through snn_file_stream(), then snn_file_commit()
 *  or snn_file_abort(). */
SNN_API snn_status snn_file_begin(snn_file **out, const char *path);
/** The stream to write to (NULL for NULL). */
SNN_API FILE *snn_file_stream(snn_file *f);
/** Flushes and fsyncs the temporary file, renames it over PATH and fsyncs PATH's
 *  directory; frees f. On any failure (a full disk, a file size limit) the temporary
 *  file is removed, PATH is left as it was, and SNN_ERR_IO says why. */
SNN_API snn_status snn_file_commit(snn_file *f);
/** Removes the temporary file and frees f, leaving PATH as it was. NULL is fine. */
SNN_API void snn_file_abort(snn_file *f);
/** Removes the PATH.tmp.PID files of processes that no longer exist (writers that
 *  were killed; they never replace PATH but take space), logging each as a warning;
 *  returns how many. */
SNN_API int snn_file_remove_stale(const char *path);

/* ------------------------------------------------------------- safetensors -- */

/** Most dimensions a tensor of a safetensors file may have. */
#define SNN_MAX_DIMS 8

/** Element type of a tensor in a safetensors file. */
typedef enum snn_dtype {
    SNN_F32 = 0, /**< float32 ("F32") */
    SNN_F64 = 1, /**< float64 ("F64") */
    SNN_I64 = 2  /**< int64 ("I64") */
} snn_dtype;

/** One tensor of a safetensors file, owned by its ::snn_safetensors. */
typedef struct snn_tensor {
    const char *name;               /**< its name in the file */
    snn_dtype dtype;                /**< element type */
    int ndim;                       /**< 0 for a scalar */
    int64_t shape[SNN_MAX_DIMS];    /**< the first ndim entries are the dimensions */
    const void *data;               /**< little-endian host values, nbytes long */
    size_t nbytes;                  /**< size of data in bytes */
} snn_tensor;

/** A safetensors file in memory: named tensors and string metadata. */
typedef struct snn_safetensors snn_safetensors;

/** An empty set of tensors, to fill with snn_safetensors_add() and write. */
SNN_API snn_status snn_safetensors_create(snn_safetensors **out);
/** Reads and validates a whole file (header JSON, dtypes, shapes, offsets). */
SNN_API snn_status snn_safetensors_read(snn_safetensors **out, const char *path);
/** snn_safetensors_read() on a file's bytes already in memory (an embedded model, a
 * download, a database blob); `name` stands for the path in messages. The bytes are
 * copied: the caller may free them on return. */
SNN_API snn_status snn_safetensors_read_memory(snn_safetensors **out, const char *name, const void *bytes,
                                               size_t size);
/** Writes via a temporary file renamed into place, so an existing file is never left
 * half-written. Tensors keep the order they were added in. */
SNN_API snn_status snn_safetensors_write(const snn_safetensors *st, const char *path);
/** Releases st and every tensor and string it owns. NULL is fine. */
SNN_API void snn_safetensors_free(snn_safetensors *st);

/** Number of tensors; 0 for NULL. */
SNN_API size_t snn_safetensors_count(const snn_safetensors *st);
/** The i-th tensor (in file or insertion order), or NULL when i is out of range. */
SNN_API const snn_tensor *snn_safetensors_at(const snn_safetensors *st, size_t i);
/** The tensor called name, or NULL when there is none. */
SNN_API const snn_tensor *snn_safetensors_find(const snn_safetensors *st, const char *name);
/** Copies data (nbytes implied by dtype and shape). Replaces a tensor of the same name. */
SNN_API snn_status snn_safetensors_add(snn_safetensors *st, const char *name, snn_dtype dtype,
                                       int ndim, const int64_t *shape, const void *data);
/** Copies tensor `name` into out as float32, converting F64/I64. If ndim >= 0 the
 * tensor's shape must equal (ndim, shape); the error message names the tensor and
 * both shapes. */
SNN_API snn_status snn_safetensors_get_f32(const snn_safetensors *st, const char *name, int ndim,
                                           const int64_t *shape, float *out);

/** The value of metadata key (the file's `__metadata__`: string keys and values);
 * NULL when absent. */
SNN_API const char *snn_safetensors_meta_get(const snn_safetensors *st, const char *key);
/** Sets metadata key to value (both copied, valid UTF-8), replacing an earlier value. */
SNN_API snn_status snn_safetensors_meta_set(snn_safetensors *st, const char *key, const char *value);
/** Number of metadata keys; 0 for NULL. */
SNN_API size_t snn_safetensors_meta_count(const snn_safetensors *st);
/** The i-th metadata key, or NULL when i is out of range. */
SNN_API const char *snn_safetensors_meta_key(const snn_safetensors *st, size_t i);

/* ------------------------------------------------------------------ models -- */

/** Most convolution blocks a `simple` model may have. */
#define SNN_MAX_BLOCKS 8

/** The two architectures of the seed, presets that expand to a network description
 * (snn_network_preset()), and any other description. */
typedef enum snn_model_kind {
    SNN_MODEL_SIMPLE = 0, /**< ConvLyapunovSNN: [conv-BN-LIF, avgpool] per channel entry, fc */
    SNN_MODEL_VGG = 1,    /**< VGGLyapunovSNN: 3 x [conv-BN-LIF x2, avgpool], fc1, LIF, fc2 */
    SNN_MODEL_NETWORK = 2 /**< a model of a network description (snn_model_create_network()); its
                           *   config is derived from the description and cannot create one */
} snn_model_kind;

/** How images become the T steps of input spikes. */
typedef enum snn_encoding {
    SNN_ENCODING_RATE = 0,   /**< Bernoulli(clamp(x * gain, 0, 1)) per step, from Philox */
    SNN_ENCODING_DIRECT = 1, /**< x at every step */
    SNN_ENCODING_NONE = 2    /**< the caller passes (B, T, C, H, W) */
} snn_encoding;

/** The architecture and hyperparameters of a model; start from
 * snn_model_config_default(). */
typedef struct snn_model_config {
    snn_model_kind kind;           /**< simple or vgg */
    int in_channels;               /**< channels of an input image */
    int height;                    /**< height of an input image */
    int width;                     /**< width of an input image */
    int num_classes;               /**< outputs of the readout */
    int num_blocks;                /**< simple: number of entries in channels; vgg: 3 */
    int channels[SNN_MAX_BLOCKS];  /**< simple: output channels per block; vgg: 64,128,256 */
    int T;                         /**< time steps per forward pass */
    float beta;                    /**< membrane decay, used for every LIF layer of a new model */
    float threshold;               /**< firing threshold, used for every LIF layer of a new model */
    snn_encoding encoding;         /**< how images become input spikes */
    float encoding_gain;           /**< rate encoding: spike probability is clamp(x * gain, 0, 1) */
    float dropout;                 /**< dropout rate before the readout, in training only */
    uint8_t reserved[64];          /**< zero (room for future fields without breaking the ABI) */
} snn_model_config;

/** The seed's defaults for "simple" or "vgg" (32x32x3 input, 10 classes, T=25, ...). */
SNN_API snn_status snn_model_config_default(snn_model_config *cfg, const char *name);
/** "simple", "vgg" or "network" ("unknown" for any other value). */
SNN_API const char *snn_model_kind_name(snn_model_kind kind);
/** "rate", "direct" or "none" ("unknown" for any other value). */
SNN_API const char *snn_encoding_name(snn_encoding enc);
/** The encoding named "rate", "direct" or "none"; SNN_ERR_INVALID_ARG for anything else. */
SNN_API snn_status snn_encoding_parse(const char *name, snn_encoding *out);

/** A model: its configuration and parameters, on the host and on its context's
 * device. */
typedef struct snn_model snn_model;

/** A new model initialized as the seed does (Kaiming-normal conv, Xavier-uniform
 * linear, zero biases, unit BN), drawn from init_seed. */
SNN_API snn_status snn_model_create(snn_model **out, snn_context *ctx, const snn_model_config *cfg,
                                    uint64_t init_seed);
/** A model from tensors named as the seed's PyTorch state_dict plus SPEC metadata. */
SNN_API snn_status snn_model_from_safetensors(snn_model **out, snn_context *ctx,
                                              const snn_safetensors *st);
/** Reads a model file (or a checkpoint) with snn_safetensors_read() and
 * snn_model_from_safetensors(); the error message starts with the path. */
SNN_API snn_status snn_model_load(snn_model **out, snn_context *ctx, const char *path);
/** snn_model_load() on a safetensors file's bytes in memory (see
 * snn_safetensors_read_memory(); `name` stands for the path in messages). */
SNN_API snn_status snn_model_load_memory(snn_model **out, snn_context *ctx, const char *name, const void *bytes,
                                         size_t size);
/** The model's tensors (F32, I64 where PyTorch has int64) and metadata. */
SNN_API snn_status snn_model_to_safetensors(const snn_model *model, snn_safetensors **out);
/** Writes the model file (snn_model_to_safetensors() and snn_safetensors_write(), so
 * atomically). */
SNN_API snn_status snn_model_save(const snn_model *model, const char *path);
/** Releases the model and its device memory; free its trainer first. NULL is fine. */
SNN_API void snn_model_free(snn_model *model);

/** The model's configuration (for a loaded model, as read from its file). */
SNN_API snn_status snn_model_get_config(const snn_model *model, snn_model_config *cfg);
/** The context the model belongs to (NULL for NULL). */
SNN_API snn_context *snn_model_context(const snn_model *model);
/** Number of LIF layers (simple: num_blocks, vgg: 7). */
SNN_API int snn_model_num_lif_layers(const snn_model *model);
/** Shape of LIF layer `layer`'s membrane for batch size B: (B,C,H,W) or (B,F). */
SNN_API snn_status snn_model_lif_shape(const snn_model *model, int layer, int batch, int *ndim,
                                       int64_t shape[4]);
/** Floating-point operations (two per multiply-add) of the model's convolutions and
 *  linear layers for one sample: an eval-mode forward pass (`training` = 0) or a
 *  training step's forward and backward (`training` nonzero), with the Lyapunov
 *  estimate's perturbed trajectory when `lyapunov` is nonzero. The nominal count that
 *  `snncl bench` divides by time for GFLOP/s (sparse paths do less work). */
SNN_API snn_status snn_model_flops(const snn_model *model, int lyapunov, int training, double *flops);
/** The Lyapunov estimate's floor: what the estimate of snn_model_forward() (with this
 *  lyap_eps) is, in expectation over its N(0, 1) initial perturbation, for a network
 *  in which no spike ever differs between the two trajectories, so that each layer's
 *  difference only decays. Up to the estimate's 1e-12 guards it is
 *  (ln sqrt(sum_l beta_l^2 N_l) + (T - 1) ln sqrt(sum_l beta_l^2)) / T,
 *  N_l the neurons per sample of LIF layer l and beta_l its decay; with one beta,
 *  (ln(beta sqrt(N)) + (T - 1)(ln(beta) + ln(L) / 2)) / T for N neurons in L layers.
 *  What an estimate has above it comes from spikes that flip. */
SNN_API snn_status snn_model_lyapunov_floor(const snn_model *model, float lyap_eps, double *floor);

/** Options of an eval-mode forward pass; fill with snn_forward_params_default() first. */
typedef struct snn_forward_params {
    int lyapunov;          /**< nonzero: also compute the Benettin estimate */
    float lyap_eps;        /**< perturbation size (default 1e-4) */
    uint64_t seed;         /**< rate encoding and, without `perturb`, the perturbation */
    /** Optional unit-scale initial perturbation, one host array per LIF layer in
     * forward order, each of snn_model_lif_shape(); NULL draws N(0,1) from seed. */
    const float *const *perturb;
    /** Nonzero: the input is already spikes (B, T, C, H, W), whatever the model's
     * encoding (a model with encoding none always takes that shape). */
    int pre_encoded;
    uint8_t reserved[64];  /**< zero (room for future fields without breaking the ABI) */
} snn_forward_params;

/** Sets the defaults: no estimate, lyap_eps 1e-4, seed 0, no perturbation, input
 * encoded by the model (every other field zero). */
SNN_API void snn_forward_params_default(snn_forward_params *params);

/** Eval-mode forward pass on a batch: BatchNorm uses its running statistics and
 * dropout is off.
 * @param model   the model; its context runs the pass.
 * @param input   (B, C, H, W) for rate/direct encoding, (B, T, C, H, W) for none or
 *                params->pre_encoded.
 * @param batch   B, the number of samples.
 * @param params  options (snn_forward_params_default()).
 * @param logits  (B, num_classes), written.
 * @param lyap_mean       written when params->lyapunov, may be NULL.
 * @param lyap_per_sample (B): written when params->lyapunov, may be NULL.
 * @return SNN_OK, or a negative ::snn_status with snn_last_error() saying why. */
SNN_API snn_status snn_model_forward(snn_model *model, const float *input, int batch,
                                     const snn_forward_params *params, float *logits,
                                     float *lyap_mean, float *lyap_per_sample);

/** A caller's workspace for inference on a model: the device buffers of a forward
 * pass, which otherwise live in the model. The model is only read through a session,
 * so several threads can run one model at once, each with its own session (calls on
 * one context are serialized where they enqueue work or change the context's state,
 * and run side by side where they wait for results). One thread at a time per
 * session; no trainer may work on the model meanwhile. */
typedef struct snn_session snn_session;

/** A session on model (which must outlive it); it holds no device memory until its
 * first pass. */
SNN_API snn_status snn_session_create(snn_session **out, snn_model *model);
/** Waits for the session's enqueued work and releases it with its buffers. NULL is
 * fine. */
SNN_API void snn_session_free(snn_session *s);
/** snn_model_forward() in the session's workspace: the same results, bit for bit. */
SNN_API snn_status snn_session_forward(snn_session *s, const float *input, int batch,
                                       const snn_forward_params *params, float *logits, float *lyap_mean,
                                       float *lyap_per_sample);
/** Waits for the session's work and releases its buffers (the next pass makes them
 * again). */
SNN_API snn_status snn_session_release_buffers(snn_session *s);
/** Releases the buffers of the model's own workspace (snn_model_forward's), after
 * waiting for its work. */
SNN_API snn_status snn_model_release_buffers(snn_model *model);
/** An upper bound of the device memory, in bytes, that a session (or the model's
 * own workspace) holds after a pass on `batch` samples with `params` (NULL: the
 * defaults); the sparse paths' index buffers come on top, at most a few bytes per
 * input pixel. */
SNN_API snn_status snn_model_workspace_bytes(const snn_model *model, int batch, const snn_forward_params *params,
                                             size_t *bytes);

/** Eval-mode forward pass that also records which neurons spiked: for one sample of the
 * batch, every LIF layer's spikes at every time step (for raster plots).
 * @param model, input, batch, params as snn_model_forward(). The whole batch runs, so
 *           the sample is encoded exactly as snn_model_forward() encodes it.
 *           params->lyapunov and params->perturb are ignored: the estimate's perturbed
 *           trajectory never changes the network's own spikes, which are what is recorded.
 * @param sample  which sample, 0 <= sample < batch.
 * @param spikes  snn_model_num_lif_layers() arrays, in forward order. spikes[l] receives
 *           T * N_l bytes, N_l being layer l's neurons per sample (the product of
 *           snn_model_lif_shape() without the batch dimension: `C*H*W`, or 512 for vgg's
 *           dense layer): spikes[l][t * N_l + n] is 1 if neuron n (in C, H, W order)
 *           spiked at step t, else 0.
 * @param logits  (B, num_classes), the same values snn_model_forward() writes; may be NULL. */
SNN_API snn_status snn_model_record_spikes(snn_model *model, const float *input, int batch, int sample,
                                           const snn_forward_params *params, uint8_t *const *spikes,
                                           float *logits);

/* ------------------------------------------------------ network descriptions -- */

/** The kinds of layer a network description holds, named as PyTorch's and snnTorch's
 * modules (Conv2d, BatchNorm2d, snntorch.Leaky, AvgPool2d, MaxPool2d, Flatten, Linear,
 * Dropout). The JSON "type" of each is snn_layer_type_name(). */
typedef enum snn_layer_type {
    SNN_LAYER_CONV2D = 0,      /**< "conv2d": out_channels, kernel_size, stride, padding, bias */
    SNN_LAYER_BATCHNORM2D = 1, /**< "batchnorm2d": eps, momentum */
    SNN_LAYER_LEAKY = 2,       /**< "leaky": snnTorch's Leaky (beta, threshold, reset, surrogate, ...) */
    SNN_LAYER_AVGPOOL2D = 3,   /**< "avgpool2d": kernel_size, stride */
    SNN_LAYER_MAXPOOL2D = 4,   /**< "maxpool2d": kernel_size, stride */
    SNN_LAYER_FLATTEN = 5,     /**< "flatten": (C, H, W) to C*H*W features */
    SNN_LAYER_LINEAR = 6,      /**< "linear": out_features, bias */
    SNN_LAYER_DROPOUT = 7      /**< "dropout": p, in training only */
} snn_layer_type;

/** snnTorch's reset_mechanism: what a spike does to the membrane. */
typedef enum snn_reset {
    SNN_RESET_SUBTRACT = 0, /**< "subtract": the threshold is subtracted */
    SNN_RESET_ZERO = 1,     /**< "zero": the membrane is set to zero */
    SNN_RESET_NONE = 2      /**< "none": no reset */
} snn_reset;

/** snnTorch's surrogate gradients (snntorch.surrogate): the derivative that stands in
 * for the spike's in training. */
typedef enum snn_surrogate {
    SNN_SURROGATE_ATAN = 0,         /**< "atan": alpha (default 2), snnTorch's default */
    SNN_SURROGATE_FAST_SIGMOID = 1, /**< "fast_sigmoid": slope (default 25), the seed's */
    SNN_SURROGATE_SIGMOID = 2       /**< "sigmoid": slope (default 25) */
} snn_surrogate;

/** One layer of a description. snn_layer_desc_default() fills PyTorch's and snnTorch's
 * defaults for a type; a field that does not apply to the type is ignored. */
typedef struct snn_layer_desc {
    snn_layer_type type;       /**< which layer */
    int out;                   /**< conv2d: out_channels; linear: out_features (required: 0 until set) */
    int kernel_size;           /**< conv2d and pooling (required: 0 until set) */
    int stride;                /**< conv2d (1); pooling (0: kernel_size, as PyTorch's stride=None) */
    int padding;               /**< conv2d (0) */
    int bias;                  /**< conv2d and linear: nonzero for an additive bias (1) */
    float eps;                 /**< batchnorm2d (1e-5) */
    float momentum;            /**< batchnorm2d: running statistics' update rate (0.1) */
    float beta;                /**< leaky: membrane decay (required: NaN until set) */
    float threshold;           /**< leaky: firing threshold (1) */
    snn_reset reset_mechanism; /**< leaky (subtract) */
    int reset_delay;           /**< leaky: nonzero resets one step after the spike, as snnTorch (1) */
    snn_surrogate surrogate;   /**< leaky (atan, as snnTorch) */
    float surrogate_param;     /**< leaky: atan's alpha (2) or the sigmoids' slope (25) */
    int learn_beta;            /**< leaky: beta a trainable scalar (0) */
    int learn_threshold;       /**< leaky: threshold a trainable scalar (0) */
    float p;                   /**< dropout: the rate (0.5) */
    uint8_t reserved[32];      /**< zero (room for future fields without breaking the ABI) */
} snn_layer_desc;

/** A network description: the input, the layers run at every time step, and the
 * readout run once on the sum over time of the last layer's output (see docs/network.md
 * for the JSON form, which snn_network_parse() reads and snn_network_to_json() writes). */
typedef struct snn_network snn_network;

/** Where snn_network_add() appends: the per-step layers or the readout. */
typedef enum snn_network_part {
    SNN_NET_LAYERS = 0,  /**< run once per time step, state carried over time */
    SNN_NET_READOUT = 1  /**< run once on the summed output of the layers */
} snn_network_part;

/** "conv2d", "batchnorm2d", ... ("unknown" for any other value). */
SNN_API const char *snn_layer_type_name(snn_layer_type type);
/** The defaults of `type` (see ::snn_layer_desc); SNN_ERR_INVALID_ARG for an unknown type. */
SNN_API snn_status snn_layer_desc_default(snn_layer_desc *desc, snn_layer_type type);

/** An empty description for images of in_channels x height x width, num_classes
 * outputs, T steps, rate encoding with gain 1 (snn_network_set_encoding() changes it). */
SNN_API snn_status snn_network_create(snn_network **out, int in_channels, int height, int width, int num_classes,
                                      int T);
/** The input encoding and, for rate, its gain. */
SNN_API snn_status snn_network_set_encoding(snn_network *net, snn_encoding encoding, float gain);
/** Appends a layer to a part. The layer's own fields are checked here (a negative size,
 * an unknown reset); whether it fits what comes before is checked by
 * snn_network_check(), which snn_model_create_network() calls. */
SNN_API snn_status snn_network_add(snn_network *net, snn_network_part part, const snn_layer_desc *desc);
/** The common layers in one call each, with the defaults for every other field;
 * snn_network_add() takes them all. Each appends to part. */
SNN_API snn_status snn_network_conv2d(snn_network *net, snn_network_part part, int out_channels, int kernel_size,
                                      int stride, int padding, int bias);
/** BatchNorm2d with eps 1e-5 and momentum 0.1 (see snn_network_conv2d()). */
SNN_API snn_status snn_network_batchnorm2d(snn_network *net, snn_network_part part);
/** Leaky with this beta and threshold, reset by subtraction, the given surrogate and
 * its default parameter (see snn_network_conv2d()). */
SNN_API snn_status snn_network_leaky(snn_network *net, snn_network_part part, float beta, float threshold,
                                     snn_surrogate surrogate);
/** Average (max nonzero: max) pooling with stride kernel_size (see snn_network_conv2d()). */
SNN_API snn_status snn_network_pool2d(snn_network *net, snn_network_part part, int max, int kernel_size);
/** Flatten (see snn_network_conv2d()). */
SNN_API snn_status snn_network_flatten(snn_network *net, snn_network_part part);
/** Linear with a bias (see snn_network_conv2d()). */
SNN_API snn_status snn_network_linear(snn_network *net, snn_network_part part, int out_features);
/** Dropout with rate p (see snn_network_conv2d()). */
SNN_API snn_status snn_network_dropout(snn_network *net, snn_network_part part, float p);

/** A description from its JSON text (NUL-terminated). Every unknown key, wrong type or
 * bad value is SNN_ERR_INVALID_ARG with a message that names its place
 * ("layers[3].kernal_size: unknown key"); shapes are checked as by snn_network_check(). */
SNN_API snn_status snn_network_parse(snn_network **out, const char *json);
/** snn_network_parse() on a file; the message starts with the path. */
SNN_API snn_status snn_network_load(snn_network **out, const char *path);
/** The description of a seed model ("simple" or "vgg" with cfg's sizes), as the preset
 * expands. */
SNN_API snn_status snn_network_preset(snn_network **out, const snn_model_config *cfg);
/** Checks that every layer fits its input and infers the shapes: errors name the layer
 * ("layers[4] maxpool2d: 3x3 input smaller than kernel 4"). */
SNN_API snn_status snn_network_check(const snn_network *net);
/** The JSON text of a description, every field written out, into buf (size bytes, NUL
 * included; buf may be NULL when size is 0). *needed gets the bytes the whole text
 * needs, NUL included; SNN_ERR_INVALID_ARG when size is smaller (buf then holds
 * nothing). */
SNN_API snn_status snn_network_to_json(const snn_network *net, char *buf, size_t size, size_t *needed);
/** Number of layers in a part. */
SNN_API int snn_network_num_layers(const snn_network *net, snn_network_part part);
/** Layer `index` of a part, and its output shape per sample and step: ndim 3 (C, H, W) or
 * 1 (features) in shape (may be NULL; needs a description that passes snn_network_check()). */
SNN_API snn_status snn_network_layer(const snn_network *net, snn_network_part part, int index,
                                     snn_layer_desc *desc, int *ndim, int64_t shape[3]);
/** The input, classes, T and encoding of a description (any pointer may be NULL). */
SNN_API snn_status snn_network_input(const snn_network *net, int *in_channels, int *height, int *width,
                                     int *num_classes, int *T, snn_encoding *encoding, float *gain);
/** Releases a description; NULL is fine. */
SNN_API void snn_network_free(snn_network *net);

/** A new model of a description, initialized as the seed does (Kaiming-normal conv,
 * Xavier-uniform linear, zero biases, unit BatchNorm) from init_seed. Its parameters are
 * named as PyTorch's state_dict of nn.ModuleDict({"layers": ..., "readout": ...}):
 * "layers.0.weight", "layers.2.beta", "readout.1.bias". A description whose layers
 * snncl's kernels cannot yet run is SNN_ERR_UNSUPPORTED, naming the layer and what
 * they can run instead. */
SNN_API snn_status snn_model_create_network(snn_model **out, snn_context *ctx, const snn_network *net,
                                            uint64_t init_seed);
/** A copy of the model's description (presets expand to theirs). */
SNN_API snn_status snn_model_network(const snn_model *model, snn_network **out);

/** How weights are drawn for a new model. */
typedef enum snn_init_scheme {
    SNN_INIT_SEED = 0,   /**< the seed's: Kaiming-normal convolutions (fan_out), Xavier-uniform linear
                          *   weights, zero biases (what snn_model_create() uses) */
    SNN_INIT_PYTORCH = 1 /**< PyTorch's module defaults: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in))
                          *   (kaiming_uniform_ with a = sqrt(5)) for convolutions and linear layers */
} snn_init_scheme;

/** Draws every convolution and linear weight and bias again (scheme, init_seed) and
 * resets BatchNorm to its initial state (weight 1, bias 0, running mean 0 and variance
 * 1); beta and threshold stay. For a model without a trainer (create trainers after). */
SNN_API snn_status snn_model_init(snn_model *model, snn_init_scheme scheme, uint64_t init_seed);


/* ------------------------------------------------------------ GEMM tuning -- */

/** Options of snn_tune(); fill with snn_tune_params_default() first. */
typedef struct snn_tune_params {
    int candidates; /**< CLBlast Xgemm parameter sets to try besides its own (default 8) */
    int runs;       /**< timed runs per product, the median taken (default 3) */
    int max_cols;   /**< columns of the largest products, >= 64 (default 8192) */
    /** The workload whose matrix products are timed (from its layer plan); NULL: the
     *  default simple model on 32x32x3 images, snncl bench's first workload. */
    const snn_model_config *workload;
    int batch;      /**< the workload's batch size (default 32) */
    int store;      /**< nonzero (default): store the result for later contexts */
    /** Called with one line of progress at a time; may be NULL. */
    void (*progress)(void *user, const char *line);
    void *user;     /**< passed to progress */
} snn_tune_params;

/** A device's GEMM tuning, measured (snn_tune()) or stored (snn_tune_stored()). */
typedef struct snn_tune_result {
    const char *gemm;          /**< the faster path: "native" or "clblast" (static) */
    /* Sums over the products of the median time of one product: */
    double native_ms;          /**< the native kernels (cl/gemm.cl), ms */
    double clblast_default_ms; /**< CLBlast with its own parameters, ms */
    double clblast_tuned_ms;   /**< CLBlast with the best parameter set found, ms */
    int candidates_tried;      /**< CLBlast parameter sets timed */
    int candidates_failed;     /**< of which the device could not build or run */
    char xgemm[512];           /**< the CLBlast Xgemm parameters chosen ("GEMMK=0 KREG=1 ..."), or "" for its own */
    char path[1024];           /**< the device's tuning file (where it is, or would be) */
} snn_tune_result;

/** The defaults listed in ::snn_tune_params. */
SNN_API void snn_tune_params_default(snn_tune_params *params);
/** Times the hand-written GEMM kernels and CLBlast (with its own parameters and with
 *  `candidates` other Xgemm sets) on the workload's matrix products on ctx's device,
 *  and with `store` writes the faster choice to the device's tuning file, which every
 *  context made afterwards on that device, driver and snncl version reads
 *  ($SNNCL_CACHE_DIR, else $XDG_CACHE_HOME/snncl, else ~/.cache/snncl). CLBlast keeps
 *  the last parameters tried for the device in this process: free ctx afterwards and
 *  make a new context to run with the stored choice. */
SNN_API snn_status snn_tune(snn_context *ctx, const snn_tune_params *params, snn_tune_result *out);
/** The tuning stored for ctx's device: *found = 0 (and SNN_OK) when there is none
 *  (out->path still says where it would be); SNN_ERR_FORMAT for an unusable file. */
SNN_API snn_status snn_tune_stored(const snn_context *ctx, snn_tune_result *out, int *found);
/** Deletes the stored tuning of ctx's device (none is fine), so later contexts use
 *  the device-type default; path (may be NULL) receives the file's path. */
SNN_API snn_status snn_tune_forget(const snn_context *ctx, char *path, size_t len);

/* ---------------------------------------------------------------- training -- */

/** The optimizer of a trainer. */
typedef enum snn_optimizer {
    SNN_OPTIM_ADAM = 0, /**< torch.optim.Adam (L2 weight decay added to the gradient) */
    SNN_OPTIM_SGD = 1   /**< torch.optim.SGD with momentum (dampening 0) */
} snn_optimizer;

/** How the learning rate moves, every step. */
typedef enum snn_schedule {
    SNN_SCHEDULE_CONSTANT = 0, /**< lr at every step */
    SNN_SCHEDULE_COSINE = 1, /**< lr * (1 + cos(pi * step / total_steps)) / 2, per step */
    SNN_SCHEDULE_STEP = 2    /**< lr * gamma ^ floor(step / step_size) */
} snn_schedule;

/** The optimizer, schedule and objective of a trainer; start from
 * snn_train_config_default(). The comments give the defaults. */
typedef struct snn_train_config {
    snn_optimizer optimizer;       /**< Adam */
    float lr;                      /**< 2e-3 */
    float beta1;                   /**< Adam: 0.9 */
    float beta2;                   /**< Adam: 0.999 */
    float adam_eps;                /**< Adam: 1e-8 */
    float momentum;                /**< SGD: 0.9 */
    float weight_decay;            /**< 0 */
    snn_schedule schedule;         /**< cosine */
    int64_t total_steps;           /**< cosine: length of the schedule (required > 0 for cosine) */
    int64_t step_size;             /**< step schedule: 1000 */
    float gamma;                   /**< step schedule: 0.1 */
    float grad_clip;               /**< maximum global L2 norm of the gradient; 0: off */
    float lyap_weight;             /**< 0.1; 0 skips the perturbed trajectory */
    float lyap_target;             /**< 0.0 */
    float lyap_eps;                /**< 1e-4 */
    /** 0: the regularizer has its full weight from the first update. N > 0: a linear
     *  warm-up, update k (from 0) uses lyap_weight * min(1, (k + 1) / N), so the
     *  network can learn the task before its dynamics are pulled toward the target. */
    int64_t lyap_warmup;
    /** 0 (default): BatchNorm normalizes with the statistics of the batch each step is
     *  given, and the regularizer squares that batch's mean estimate. 1: synchronized
     *  batch statistics: when several processes train one model on shares of a global
     *  batch, every BatchNorm layer uses the global batch's statistics and the
     *  regularizer its mean estimate, summed over the processes by the function given
     *  to snn_trainer_set_sum() (snn_mpi_step() of snncl_mpi.h gives one). Alone, or
     *  with no such function, nothing changes. */
    int32_t sync_batchnorm;
    uint8_t reserved[52];          /**< zero (room for future fields without breaking the ABI) */
} snn_train_config;

/** Sets the seed's training defaults (the comments of ::snn_train_config). The cosine
 * schedule needs total_steps set before snn_trainer_create(). */
SNN_API void snn_train_config_default(snn_train_config *cfg);
/** "adam" or "sgd" ("unknown" for any other value). */
SNN_API const char *snn_optimizer_name(snn_optimizer opt);
/** The optimizer named "adam" or "sgd"; SNN_ERR_INVALID_ARG for anything else. */
SNN_API snn_status snn_optimizer_parse(const char *name, snn_optimizer *out);
/** "constant", "cosine" or "step" ("unknown" for any other value). */
SNN_API const char *snn_schedule_name(snn_schedule schedule);
/** The schedule named "constant", "cosine" or "step"; SNN_ERR_INVALID_ARG for
 * anything else. */
SNN_API snn_status snn_schedule_parse(const char *name, snn_schedule *out);

/** The figures of one training step (on the batch, before the update). */
typedef struct snn_step_stats {
    float loss;           /**< cross_entropy + w * (lyapunov - lyap_target)^2, w this update's lyap_weight (after lyap_warmup) */
    float cross_entropy;  /**< mean over the batch */
    float lyapunov;       /**< batch mean of the estimate (0 when lyap_weight is 0) */
    int correct;          /**< samples whose largest logit is the label */
    float lr;             /**< learning rate used by the update (0 for snn_trainer_gradients) */
    float grad_norm;      /**< global L2 norm of the gradient before clipping */
    uint8_t reserved[32]; /**< zero (room for future fields without breaking the ABI) */
} snn_step_stats;

/** Zeroes every field (NULL is fine). */
SNN_API void snn_step_stats_init(snn_step_stats *stats);

/** One batch of a training step. */
typedef struct snn_batch {
    const float *input;    /**< (B, C, H, W), or (B, T, C, H, W) when pre_encoded or encoding none */
    const int64_t *labels; /**< (B), each in [0, num_classes) */
    int size;              /**< B >= 1; B = 1 only if every convolution's output is larger than 1x1 (BatchNorm needs more than one value per channel, as in PyTorch) */
    uint64_t seed;         /**< rate encoding, dropout mask and (without perturb) the perturbation */
    const float *const *perturb; /**< optional unit perturbation per LIF layer, as snn_forward_params */
    int pre_encoded;       /**< nonzero: input is already spikes, as snn_forward_params::pre_encoded */
    /** When the batch is one process's share of a global batch (several processes
     *  training together): the index of its first sample in the global batch, and the
     *  same seed on every process. The random draws (rate encoding, the dropout mask,
     *  the perturbation) are then those the global batch's samples get in one process.
     *  0 for a batch of its own. */
    int64_t first;
    uint8_t reserved[24];  /**< zero (room for future fields without breaking the ABI) */
} snn_batch;

/** Zeroes every field, the reserved bytes included (NULL is fine). Start every batch
 * from it, or from a designated initializer (`{.input = x, .labels = y, .size = B}`),
 * which zeroes the rest: a later snncl that gives the reserved bytes a meaning then
 * reads zeros there, and the code still compiles when fields are added. */
SNN_API void snn_batch_init(snn_batch *batch);

/** Trains a model in place: BatchNorm uses batch statistics and moves its running
 * estimates, dropout is active, gradients come from backpropagation through time with
 * the fast-sigmoid surrogate over both trajectories of the Lyapunov estimate. While a
 * trainer works, the model's parameters live on the device; snn_model_save,
 * snn_model_to_safetensors and snn_model_forward fetch them first. The model must
 * outlive the trainer. */
typedef struct snn_trainer snn_trainer;

/** A trainer for model with the optimizer state it needs (zero); SNN_ERR_INVALID_ARG
 * with the reason for a bad configuration. cfg may be NULL: the defaults of
 * snn_train_config_default() with a constant schedule. */
SNN_API snn_status snn_trainer_create(snn_trainer **out, snn_model *model, const snn_train_config *cfg);
/** Releases the trainer and its device memory; the model keeps its trained
 * parameters. NULL is fine. */
SNN_API void snn_trainer_free(snn_trainer *tr);
/** Forward, backward and one optimizer update. stats may be NULL. */
SNN_API snn_status snn_trainer_step(snn_trainer *tr, const snn_batch *batch, snn_step_stats *stats);
/** Forward and backward only (running statistics still move, as in PyTorch). stats
 * may be NULL. */
SNN_API snn_status snn_trainer_gradients(snn_trainer *tr, const snn_batch *batch, snn_step_stats *stats);
/** The optimizer update on the gradients as they are now (one step of the schedule,
 * clipping by their norm): with snn_trainer_gradients(), a step split in two, so that
 * the gradients can be changed between (averaged across processes, for example,
 * through snn_trainer_param_cl() of snncl_opencl.h). Enqueued, not waited for. */
SNN_API snn_status snn_trainer_apply(snn_trainer *tr);
/** Number of trainable tensors (0 for NULL); see snn_trainer_grad_info(). */
SNN_API int snn_trainer_num_grads(const snn_trainer *tr);
/** The i-th trainable tensor's PyTorch name, shape and element count (any output
 * pointer may be NULL). */
SNN_API snn_status snn_trainer_grad_info(const snn_trainer *tr, int i, const char **name, int *ndim,
                                         int64_t shape[4], size_t *count);
/** Copies the last computed gradient of tensor i (count floats). */
SNN_API snn_status snn_trainer_read_grad(snn_trainer *tr, int i, float *out);
/** Replaces the gradient of tensor i with `in` (count floats): between
 * snn_trainer_gradients() and snn_trainer_apply(), a gradient averaged across
 * processes, for example. */
SNN_API snn_status snn_trainer_write_grad(snn_trainer *tr, int i, const float *in);
/** The configuration the trainer was created with (with the defaults filled in when
 * it was created from NULL). */
SNN_API snn_status snn_trainer_get_config(const snn_trainer *tr, snn_train_config *cfg);

/** Sums `n` values in place over every process that trains the model together (an
 * all-reduce: on return each process holds the same sums); SNN_OK, or an error after
 * snn_report_error(). */
typedef snn_status (*snn_sum_fn)(void *user, double *values, size_t n);
/** The processes' sum for synchronized batch statistics
 * (snn_train_config::sync_batchnorm); sum NULL removes it. With one set,
 * snn_trainer_gradients() (and the other steps) become collective calls: every process
 * calls them together, each with its share of the global batch (numbered by
 * snn_batch::first, one seed everywhere), and each call sums 2 x (BatchNorm layers)
 * times, once more with the regularizer, in the same order with the same n everywhere,
 * whatever the share:
 *  - a share may be empty (size 0, snn_trainer_gradients() only): it takes part in
 *    the sums and gets zero gradients;
 *  - a process whose step fails still makes the step's remaining sums, with
 *    values[0] = 1 (0 otherwise), so no process waits forever: a sum that comes back
 *    with values[0] above this process's own fails the step with "another process
 *    failed";
 *  - the gradients each process gets, weighted by its share of the global batch and
 *    summed, are the global batch's (as snn_mpi_step() combines them).
 * Each sum waits for the device, so a synchronized step on a device batch
 * (snn_trainer_step_cl()) returns only after its backward. The function must stay
 * valid while set. */
SNN_API snn_status snn_trainer_set_sum(snn_trainer *tr, snn_sum_fn sum, void *user);
/** Optimizer updates taken so far (restored by snn_trainer_load_state()). */
SNN_API int64_t snn_trainer_steps_done(const snn_trainer *tr);
/** The learning rate the next update will use. */
SNN_API float snn_trainer_next_lr(const snn_trainer *tr);
/** Optimizer state as tensors `optim.NAME.exp_avg` and `optim.NAME.exp_avg_sq` (Adam) or
 * `optim.NAME.momentum_buffer` (SGD), NAME being each trainable tensor's name, and
 * metadata "optim.steps", added to st (a checkpoint holds these next to the model). */
SNN_API snn_status snn_trainer_save_state(snn_trainer *tr, snn_safetensors *st);
/** Restores the optimizer state and step count that snn_trainer_save_state() wrote
 * (SNN_ERR_FORMAT when st holds none or another optimizer's). The model's own
 * parameters come from loading the same checkpoint with snn_model_load(). */
SNN_API snn_status snn_trainer_load_state(snn_trainer *tr, const snn_safetensors *st);

/** Device memory snncl holds in ctx now, and the most it has held (bytes); either
 * output pointer may be NULL. */
SNN_API snn_status snn_context_memory(const snn_context *ctx, size_t *in_use, size_t *peak);
/** Starts measuring the peak again from the memory held now. */
SNN_API snn_status snn_context_reset_peak(snn_context *ctx);

/* ---------------------------------------------------------------- datasets -- */

/** Labelled images held on the host as bytes: MNIST and Fashion-MNIST (IDX files,
 * optionally gzip-compressed) and CIFAR-10 (its binary batches). Images come out as
 * float (B, C, H, W): x = (byte / 255 - mean[c]) / std[c], evaluated in double and
 * rounded once to float (so with the default mean 0 and std 1, x is byte / 255
 * correctly rounded), unless snn_dataset_set_normalization() says otherwise.
 * Loaders set `*out` to NULL on failure: SNN_ERR_IO when a file is missing or cannot be
 * read (the message names the paths tried), SNN_ERR_FORMAT when its contents are
 * malformed (bad magic or type, wrong dimensions, truncated or extra data, a label
 * outside 0..9, image and label counts that differ, no images, absurd sizes). */
typedef struct snn_dataset snn_dataset;

/** The datasets snncl reads. */
typedef enum snn_dataset_kind {
    SNN_DATASET_MNIST = 0,         /**< MNIST digits, 1x28x28, IDX files */
    SNN_DATASET_FASHION_MNIST = 1, /**< Fashion-MNIST, 1x28x28, IDX files */
    SNN_DATASET_CIFAR10 = 2        /**< CIFAR-10, 3x32x32, binary batches */
} snn_dataset_kind;

/** "mnist", "fashion-mnist", "cifar10" ("unknown" for any other value). Parsing ignores
 * case and also accepts "fashion_mnist", "fmnist" and "cifar-10". */
SNN_API const char *snn_dataset_kind_name(snn_dataset_kind kind);
/** The dataset kind of a name, as snn_dataset_kind_name() describes;
 * SNN_ERR_INVALID_ARG for any other name. */
SNN_API snn_status snn_dataset_kind_parse(const char *name, snn_dataset_kind *out);
/** Where Debian's packages put the files (NULL where there is no such package):
 * fashion-mnist: /usr/share/datasets/fashion-mnist (dataset-fashion-mnist); Debian 12
 * packages neither MNIST nor CIFAR-10, so NULL for those. */
SNN_API const char *snn_dataset_default_dir(snn_dataset_kind kind);

/** One split of a dataset from its directory, with the files' usual names:
 *  - (fashion-)mnist: `{train,t10k}-{images-idx3,labels-idx1}-ubyte`, each also accepted
 *                   with a .gz suffix (the plain name is tried first);
 *  - cifar10:         `data_batch_1.bin` .. `data_batch_5.bin`, `test_batch.bin`, also in a
 *                   `cifar-10-batches-bin/` subdirectory.
 *
 * train: nonzero for the training split, zero for the test split. dir must not be NULL
 * (pass snn_dataset_default_dir() for Debian's location). */
SNN_API snn_status snn_dataset_load(snn_dataset **out, snn_dataset_kind kind, const char *dir, int train);
/** An IDX image file (unsigned bytes, 3 dims N x H x W, C = 1) and its label file (1 dim
 * N), each plain or gzip-compressed, opened by exactly the names given. */
SNN_API snn_status snn_dataset_load_idx(snn_dataset **out, const char *images_path,
                                        const char *labels_path);
/** CIFAR-10 binary batches (records of 1 label byte + 3x32x32 bytes), concatenated. */
SNN_API snn_status snn_dataset_load_cifar10(snn_dataset **out, const char *const *paths, int count);
/** Releases the dataset. NULL is fine. */
SNN_API void snn_dataset_free(snn_dataset *ds);

/** Number of images; 0 for NULL. */
SNN_API size_t snn_dataset_size(const snn_dataset *ds);
/** Channels, height and width of every image; all three pointers must be non-NULL. */
SNN_API snn_status snn_dataset_shape(const snn_dataset *ds, int *channels, int *height, int *width);
/** 10 for all three datasets: one more than the largest label the format allows. */
SNN_API int snn_dataset_num_classes(const snn_dataset *ds);
/** Keeps only the first n images (n >= 1; n larger than the size changes nothing). */
SNN_API snn_status snn_dataset_truncate(snn_dataset *ds, size_t n);

/** Per-channel mean and (population) standard deviation of the images scaled to [0, 1],
 * byte / 255, over the whole dataset, computed in double whatever the normalization.
 * mean and std hold one value per channel. */
SNN_API snn_status snn_dataset_channel_stats(const snn_dataset *ds, float *mean, float *std);
/** Sets the normalization of the images snn_dataset_gather() returns,
 * x = (byte / 255 - mean[c]) / std[c].
 * mean and std: one value per channel; mean finite, std positive and finite (and not
 * so small that a value overflows float). On failure the normalization is unchanged. */
SNN_API snn_status snn_dataset_set_normalization(snn_dataset *ds, const float *mean, const float *std);

/** The order of an epoch: a permutation of 0, 1, ..., size-1 drawn from (seed, epoch) by
 * Fisher-Yates over Philox, identical on every machine. order holds size entries.
 * epoch < 2^23. Exactly: the host Philox4x32-10 stream with key seed and stream
 * 0x800000 + epoch (counter words: block low, block high, 0xC0FFEE, 0, starting at block
 * (0x800000 + epoch) << 40, four 32-bit words per block); order starts as the identity,
 * and for i = size-1 down to 1 it swaps order[i] and order[j], where j = u mod (i+1) for
 * the first next word u below floor(2^32 / (i+1)) * (i+1). */
SNN_API snn_status snn_dataset_order(const snn_dataset *ds, uint64_t seed, uint64_t epoch,
                                     uint32_t *order);
/** Copies the images indices[0..count) as float (count, C, H, W) and their labels.
 * Every index must be below the size (checked before anything is written). */
SNN_API snn_status snn_dataset_gather(const snn_dataset *ds, const uint32_t *indices, size_t count,
                                      float *images, int64_t *labels);

/* ----------------------------------------------------------- training runs -- */

/** Where a training run stands, and the sums of the epoch in progress. */
typedef struct snn_run_position {
    int epoch;            /**< the epoch in progress, from 0 */
    int step;             /**< its batches done (all of them: snn_run_next_epoch() is next) */
    int64_t global_step;  /**< batches done in the whole run */
    double loss;          /**< the epoch's sum of each batch's loss times its size */
    double cross_entropy; /**< likewise */
    double lyapunov;      /**< likewise (0 without the regularizer) */
    int64_t correct;      /**< the epoch's correctly classified samples */
    int64_t seen;         /**< the epoch's samples */
    int64_t steps;        /**< the epoch's batches in this position's sums */
} snn_run_position;

/** A training run: a trainer stepping through a dataset epoch by epoch, exactly as
 *  `snncl train` does, so a C program can train, checkpoint and resume the same way:
 *  - epoch e visits the images in the order snn_dataset_order(ds, seed, e, ...), in
 *    batches of `batch` (the last one may be smaller);
 *  - the batch of global step k gets the seed snn_run_step_seed(seed, k) (its rate
 *    encoding, dropout mask and perturbation);
 *  - snn_run_checkpoint() holds the model, the optimizer state and the position, and
 *    snn_run_resume() continues from it; the result is the same, bit for bit on the
 *    same device, as a run never stopped.
 *  The trainer and the dataset must outlive the run. */
typedef struct snn_run snn_run;

/** Batches in an epoch of `images` images: ceil(images / batch) (0 for no images or a
 *  batch below 1). For a cosine schedule, total_steps = epochs * this. */
SNN_API int snn_run_steps_per_epoch(size_t images, int batch);
/** The seed of global step k of a run seeded with `seed` (a SplitMix64 mix of both). */
SNN_API uint64_t snn_run_step_seed(uint64_t seed, int64_t global_step);
/** A run of tr over train at epoch 0, step 0. SNN_ERR_SHAPE when the dataset's images
 *  or classes do not fit the trainer's model. */
SNN_API snn_status snn_run_create(snn_run **out, snn_trainer *tr, const snn_dataset *train, int batch,
                                  uint64_t seed);
/** Releases the run (not its trainer or dataset). NULL is fine. */
SNN_API void snn_run_free(snn_run *run);
/** How a data-parallel run trains on its share of a global batch: it must apply the
 *  update of the whole global batch (the average over every process's share, as
 *  snn_mpi_step() of snncl_mpi.h does) and fill stats with the global batch's figures.
 *  A share may be empty (size 0) at the end of an epoch. */
typedef snn_status (*snn_run_step_fn)(void *user, snn_trainer *tr, const snn_batch *share, snn_step_stats *stats);

/** Makes the run one of `ranks` processes training together: of every batch of the
 *  epoch's order (the same order whatever the number of processes) this one takes
 *  share `rank` (a contiguous part; shares differ by at most one image) and trains
 *  through `step`. The position and the figures still count whole batches, so a
 *  checkpoint resumes with any number of processes. Every share has the batch's seed
 *  and its first sample's index (snn_batch::first), so its random draws (encoding,
 *  dropout, perturbation) are those of its samples in one process. ranks = 1 with
 *  step = NULL is the default. */
SNN_API snn_status snn_run_set_shard(snn_run *run, int rank, int ranks, snn_run_step_fn step, void *user);

/** Trains on the next batch of the epoch in progress and advances the position;
 *  stats (may be NULL) gets the step's figures. SNN_ERR_INVALID_ARG when the epoch
 *  is complete. A non-finite loss is reported in stats, not as an error. */
SNN_API snn_status snn_run_step(snn_run *run, snn_step_stats *stats);
/** Moves a complete epoch's run to the next epoch's step 0, with zero sums. */
SNN_API snn_status snn_run_next_epoch(snn_run *run);
/** The position (see ::snn_run_position). */
SNN_API snn_status snn_run_get_position(const snn_run *run, snn_run_position *pos);
/** A checkpoint of the current position: the model's tensors and configuration, the
 *  optimizer state (snn_trainer_save_state()) and "train." metadata (position, epoch
 *  sums, batch, seed). Add your own metadata, then snn_safetensors_write(). Fails with
 *  SNN_ERR_NUMERIC (naming the tensor) when a parameter or the optimizer state is inf
 *  or nan, so a diverged run never overwrites a good checkpoint. */
SNN_API snn_status snn_run_checkpoint(snn_run *run, snn_safetensors **out);
/** Continues from a checkpoint of snn_run_checkpoint(): restores the optimizer state
 *  and the position. The trainer's model must have been made from the same checkpoint
 *  (snn_model_load() or snn_model_from_safetensors()). SNN_ERR_FORMAT for a file that
 *  is no training checkpoint; SNN_ERR_INVALID_ARG for one of another batch or seed. */
SNN_API snn_status snn_run_resume(snn_run *run, const snn_safetensors *ckpt);

#ifdef __cplusplus
}
#endif

#endif /* SNNCL_H */
