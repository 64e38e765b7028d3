/* The device context: one OpenCL device, its queue, the program built from the cl/ sources,
 * and small helpers for buffers and kernel launches used by every op (context.c).
 * Opening and closing one is device.c's; the GEMM's part of it belongs to gemm.c. */
#ifndef SNNCL_CONTEXT_H
#define SNNCL_CONTEXT_H

#include <CL/cl.h>
#include <pthread.h>

#include "cl_errors.h"
#include "internal.h"

#define SNN_MAX_KERNELS 96
#define SNN_MAX_DENSITY_STATS 16

/* Which code computes snn_gemm (src/core/gemm.h). */
typedef enum snn_gemm_impl {
    SNN_GEMM_AUTO = 0,    /* only as an argument: the device's default */
    SNN_GEMM_CLBLAST = 1, /* CLBlastSgemm */
    SNN_GEMM_NATIVE = 2   /* the kernels of cl/gemm.cl */
} snn_gemm_impl;

/* A device buffer that grows on demand: the one kind of reusable buffer in snncl
 * (forward and training buffers, scratch, the GEMM's workspace). */
typedef struct snn_dbuf {
    cl_mem mem;
    size_t cap; /* bytes */
} snn_dbuf;

/* Device-memory counts of a context (see snn_context.mem). */
struct snn_mem_count {
    size_t in_use, peak;
    size_t refs; /* the context, and each live buffer whose release callback is set */
};

struct snn_context {
    /* Recursive; held by everything that changes the context's state while models
     * work (launches: a kernel's arguments are set then enqueued; GEMMs and their
     * scratch; the kernel cache; the counters), so that several threads can use one
     * context, each with its own workspaces (snn_session). Blocking transfers wait
     * outside it. */
    pthread_mutex_t lock;
    cl_platform_id platform;
    cl_device_id device;
    cl_context cl;
    cl_command_queue queue;
    cl_program program;
    snn_device_info info;
    struct {
        const char *name;
        cl_kernel kernel;
        size_t max_wg; /* CL_KERNEL_WORK_GROUP_SIZE */
    } kernels[SNN_MAX_KERNELS];
    int num_kernels;
    /* Bytes of device buffers made by snn_buffer_create that are alive, and the most
     * ever alive (CLBlast's own temporaries are not counted). Updated atomically: the
     * release callback may run on an OpenCL runtime thread, even after snn_context_free
     * (PoCL destroys a buffer when its last command is cleaned up), so the counts have
     * their own block, freed by the last of the context and its buffers (context.c). */
    struct snn_mem_count *mem;
    /* SNNCL_PROFILE=1: every launch waits for completion and its time is added to
     * its kernel's entry (GEMMs under "gemm"); the table prints when the context is freed. */
    int profile;
    double profile_seconds[SNN_MAX_KERNELS + 1];
    unsigned long profile_calls[SNN_MAX_KERNELS + 1];
    /* ... and the input density of the convolutions, per input shape (C, H, W): which
     * path each chunk took and the fraction of nonzero inputs. */
    struct snn_density_stat {
        size_t C, H, W;
        int difference; /* of the two trajectories' inputs (training's weight gradient) */
        double nonzero, total;
        unsigned long sparse, dense;
    } density[SNN_MAX_DENSITY_STATS];
    int num_density;
    /* Convolution chunks whose fraction of nonzero inputs is at most this take the
     * sparse path (src/ops/conv.c; 0: never). Set from the device type when the
     * context is made; tests set it to force a path. */
    float sparse_density;
    /* snn_context_params.dense_only: no density-dependent path at all (also not the
     * estimate's sparse differences), so that no call waits for the device inside. */
    int dense_only;
    /* snn_context_params.memory_budget (0: none) */
    size_t memory_budget;
    /* snn_context_params.ignore_environment == 0 */
    int use_env;
    /* snn_context_params.tuning_dir ("": the default of tune_db.c) */
    char tuning_dir[1024];
    /* Blocking transfers and waits, counted for the profile: a pass that should not
     * wait for the device shows none (snn_buffer_read/write, snn_context_finish). */
    unsigned long host_reads, host_writes, host_waits;
    /* The calls on the caller's device buffers (snncl_opencl.h), and the host
     * synchronizations within them (snn_profile_device_call). */
    unsigned long device_calls, device_call_syncs;
#define SNN_SPARSE_DENSITY_CPU 0.25f /* bench_conv: where the two paths cost the same */
#define SNN_SPARSE_DENSITY_GPU 0.1f /* not measured yet: no GPU at hand */
    /* Kernels with two forms (the sparse convolutions, the fused LIF backward) use
     * the GPU's, one work-item per output value, rather than the CPU's, a block of
     * outputs in vector registers per work-item. From the device type; tests flip it. */
    int lane_kernels;
    /* Read and written by gemm.c only (gemm.h is its interface): the implementation in
     * use, what SNN_GEMM_AUTO means here (the stored tuning, else the device-type
     * default), why, and the native path's scratch (split reductions, transposed
     * operands), grown on demand, released by snn_gemm_release. */
    struct snn_gemm_state {
        snn_gemm_impl impl;
        snn_gemm_impl auto_impl;
        const char *reason; /* "SNNCL_GEMM", "snncl tune" or "device-type default" */
        snn_dbuf ws;
        unsigned cols_rm, cols_cv, dot_di, dot_dj; /* register blocking, built into the program */
    } gemm;
};

/* Profiling brackets for work not launched through snn_launch (the GEMMs). */
double snn_profile_start(snn_context *ctx);
void snn_profile_stop(snn_context *ctx, int slot, double start);
#define SNN_PROFILE_GEMM SNN_MAX_KERNELS

#define SNN_LOCK(ctx) pthread_mutex_lock(&(ctx)->lock)
#define SNN_UNLOCK(ctx) pthread_mutex_unlock(&(ctx)->lock)

/* Counts one host synchronization in *counter (one of ctx's host_* counters). */
void snn_count_host_sync(snn_context *ctx, unsigned long *counter);
/* Host synchronizations so far (blocking reads and writes, waits for the queue). */
unsigned long snn_host_syncs(snn_context *ctx);
/* Counts a call on device buffers that began when snn_host_syncs was `before`. */
void snn_profile_device_call(snn_context *ctx, unsigned long before);

/* The per-kernel time table of SNNCL_PROFILE, to stderr (when the context is freed). */
void snn_profile_report(const snn_context *ctx);
/* Adds a convolution chunk's density to the profile (when profiling). */
void snn_profile_density(snn_context *ctx, size_t C, size_t H, size_t W, int difference, double nonzero,
                         double total, int sparse);

/* Drops one reference to a context's memory counts (the context's or a buffer's). */
void snn_mem_count_unref(struct snn_mem_count *m);

/* Finds (and caches) a kernel of the context's program. */
snn_status snn_kernel_get(snn_context *ctx, const char *name, cl_kernel *out, size_t *max_wg);

/* A kernel argument: a value (size and address) or local memory (size, NULL). */
typedef struct snn_arg {
    size_t size;
    const void *ptr;
} snn_arg;

#define SNN_ARG_MEM(m) ((snn_arg){sizeof(cl_mem), &(m)})
#define SNN_ARG_INT(v) ((snn_arg){sizeof(cl_int), &(cl_int){(cl_int)(v)}})
#define SNN_ARG_UINT(v) ((snn_arg){sizeof(cl_uint), &(cl_uint){(cl_uint)(v)}})
#define SNN_ARG_FLOAT(v) ((snn_arg){sizeof(cl_float), &(cl_float){(cl_float)(v)}})
#define SNN_ARG_LOCAL(bytes) ((snn_arg){(bytes), NULL})
#define SNN_ARGS(...) (int)(sizeof((snn_arg[]){__VA_ARGS__}) / sizeof(snn_arg)), (snn_arg[]){__VA_ARGS__}

/* Sets the arguments and enqueues `name` over global[dims] (local may be NULL).
 * Does not wait. Zero-sized launches are skipped. */
snn_status snn_launch(snn_context *ctx, const char *name, int dims, const size_t *global,
                      const size_t *local, int nargs, const snn_arg *args);

/* Work-group size for a kernel that needs an explicit one: the largest power of two
 * <= min(cap, the kernel's limit). */
snn_status snn_kernel_wg(snn_context *ctx, const char *name, size_t cap, size_t *out);

/* Work-group size for a kernel whose groups reduce over their items (one group per
 * sample or channel): snn_kernel_wg on GPUs, 1 on CPU devices (see context.c). */
snn_status snn_group_wg(snn_context *ctx, const char *name, size_t cap, size_t *out);

snn_status snn_buffer_create(snn_context *ctx, size_t bytes, cl_mem *out);
void snn_buffer_release(cl_mem *mem);
/* Grows b to at least bytes (contents not kept). */
snn_status snn_dbuf_reserve(snn_context *ctx, snn_dbuf *b, size_t bytes);
void snn_dbuf_release(snn_dbuf *b);

/* A buffer the caller hands in (snncl_opencl.h): SNN_ERR_INVALID_ARG naming `what`
 * unless it belongs to ctx's OpenCL context and holds bytes from byte offset. */
snn_status snn_caller_buffer(const snn_context *ctx, cl_mem mem, size_t offset, size_t bytes, const char *fn,
                             const char *what);
/* A wait list as OpenCL takes it: n > 0 exactly when events is not NULL, none NULL. */
snn_status snn_wait_list_check(cl_uint n, const cl_event *events, const char *fn);
/* Work enqueued after this starts once the n events have completed. */
snn_status snn_enqueue_wait(snn_context *ctx, cl_uint n, const cl_event *events);
/* *event (when event is not NULL) completes when everything enqueued so far has. */
snn_status snn_enqueue_marker(snn_context *ctx, cl_event *event);
/* Device-side copy, not waited for. */
snn_status snn_buffer_copy(snn_context *ctx, cl_mem src, size_t src_offset, cl_mem dst, size_t dst_offset,
                           size_t bytes);

snn_status snn_buffer_write(snn_context *ctx, cl_mem mem, size_t offset, size_t bytes,
                            const void *src);
snn_status snn_buffer_read(snn_context *ctx, cl_mem mem, size_t offset, size_t bytes, void *dst);
snn_status snn_buffer_fill_zero(snn_context *ctx, cl_mem mem, size_t offset, size_t bytes);

#endif
