/* The context's working parts: profiling, the kernel cache, launches and device
 * buffers with their memory counts. Opening and closing a context is device.c's. */
#include "context.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fault.h"

double snn_profile_start(snn_context *ctx) {
    if (!ctx->profile) return 0.0;
    clFinish(ctx->queue);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void snn_profile_stop(snn_context *ctx, int slot, double start) {
    if (!ctx->profile) return;
    const double t = snn_profile_start(ctx);
    ctx->profile_seconds[slot] += t - start;
    ctx->profile_calls[slot]++;
}

void snn_count_host_sync(snn_context *ctx, unsigned long *counter) {
    SNN_LOCK(ctx);
    (*counter)++;
    SNN_UNLOCK(ctx);
}

unsigned long snn_host_syncs(snn_context *ctx) {
    SNN_LOCK(ctx);
    const unsigned long n = ctx->host_reads + ctx->host_writes + ctx->host_waits;
    SNN_UNLOCK(ctx);
    return n;
}

void snn_profile_device_call(snn_context *ctx, unsigned long before) {
    SNN_LOCK(ctx);
    ctx->device_calls++;
    ctx->device_call_syncs += snn_host_syncs(ctx) - before;
    SNN_UNLOCK(ctx);
}

void snn_profile_report(const snn_context *ctx) {
    double total = 0;
    for (int i = 0; i <= SNN_MAX_KERNELS; i++) total += ctx->profile_seconds[i];
    fprintf(stderr, "snncl profile (%s): %.3f s in device work\n", ctx->info.name, total);
    int done[SNN_MAX_KERNELS + 1] = {0};
    for (;;) {
        int best = -1;
        for (int i = 0; i <= SNN_MAX_KERNELS; i++)
            if (!done[i] && ctx->profile_calls[i] && (best < 0 || ctx->profile_seconds[i] > ctx->profile_seconds[best]))
                best = i;
        if (best < 0) break;
        done[best] = 1;
        fprintf(stderr, "  %-24s %9.3f s %5.1f%% %8lu calls\n", best == SNN_PROFILE_GEMM ? "gemm" : ctx->kernels[best].name,
                ctx->profile_seconds[best], total > 0 ? 100.0 * ctx->profile_seconds[best] / total : 0.0,
                ctx->profile_calls[best]);
    }
    fprintf(stderr, "  host synchronizations: %lu blocking reads, %lu blocking writes, %lu waits for the queue\n",
            ctx->host_reads, ctx->host_writes, ctx->host_waits);
    if (ctx->device_calls)
        fprintf(stderr, "  calls on device buffers: %lu, with %lu host synchronizations within them\n",
                ctx->device_calls, ctx->device_call_syncs);
    if (ctx->num_density)
        fprintf(stderr, "  convolution inputs (sparse path at density <= %.2f):\n", (double)ctx->sparse_density);
    for (int i = 0; i < ctx->num_density; i++) {
        const struct snn_density_stat *d = &ctx->density[i];
        fprintf(stderr, "    %4zu x %3zux%-3zu  density %.4f  chunks: %lu sparse, %lu dense%s\n", d->C, d->H, d->W,
                d->total > 0 ? d->nonzero / d->total : 0.0, d->sparse, d->dense,
                d->difference ? "  (difference of the trajectories)" : "");
    }
}

static void density_stat(snn_context *ctx, size_t C, size_t H, size_t W, int difference, double nonzero,
                         double total, int sparse);

void snn_profile_density(snn_context *ctx, size_t C, size_t H, size_t W, int difference, double nonzero,
                         double total, int sparse) {
    if (!ctx->profile) return;
    SNN_LOCK(ctx);
    density_stat(ctx, C, H, W, difference, nonzero, total, sparse);
    SNN_UNLOCK(ctx);
}

static void density_stat(snn_context *ctx, size_t C, size_t H, size_t W, int difference, double nonzero,
                         double total, int sparse) {
    struct snn_density_stat *d = NULL;
    for (int i = 0; i < ctx->num_density && !d; i++)
        if (ctx->density[i].C == C && ctx->density[i].H == H && ctx->density[i].W == W &&
            ctx->density[i].difference == difference)
            d = &ctx->density[i];
    if (!d) {
        if (ctx->num_density == SNN_MAX_DENSITY_STATS) return; /* more shapes than any model has */
        d = &ctx->density[ctx->num_density++];
        d->C = C;
        d->H = H;
        d->W = W;
        d->difference = difference;
    }
    d->nonzero += nonzero;
    d->total += total;
    if (sparse)
        d->sparse++;
    else
        d->dense++;
}

/* ---------------------------------------------------------------- kernels -- */

static snn_status kernel_get(snn_context *ctx, const char *name, cl_kernel *out, size_t *max_wg) {
    for (int i = 0; i < ctx->num_kernels; i++) {
        if (strcmp(ctx->kernels[i].name, name) == 0) {
            *out = ctx->kernels[i].kernel;
            if (max_wg) *max_wg = ctx->kernels[i].max_wg;
            return SNN_OK;
        }
    }
    if (ctx->num_kernels == SNN_MAX_KERNELS)
        return snn_fail(SNN_ERR_OPENCL, "kernel cache full (raise SNN_MAX_KERNELS)");
    cl_int err;
    cl_kernel k = clCreateKernel(ctx->program, name, &err);
    if (err != CL_SUCCESS)
        return snn_fail(SNN_ERR_OPENCL, "clCreateKernel(%s) failed: %s", name, snn_cl_error_name(err));
    size_t wg = 1;
    clGetKernelWorkGroupInfo(k, ctx->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    ctx->kernels[ctx->num_kernels].name = name;
    ctx->kernels[ctx->num_kernels].kernel = k;
    ctx->kernels[ctx->num_kernels].max_wg = wg;
    ctx->num_kernels++;
    *out = k;
    if (max_wg) *max_wg = wg;
    return SNN_OK;
}

snn_status snn_kernel_wg(snn_context *ctx, const char *name, size_t cap, size_t *out) {
    cl_kernel k;
    size_t max_wg;
    SNN_TRY(snn_kernel_get(ctx, name, &k, &max_wg));
    if (max_wg > cap) max_wg = cap;
    size_t wg = 1;
    while (wg * 2 <= max_wg) wg *= 2;
    *out = wg;
    return SNN_OK;
}

snn_status snn_group_wg(snn_context *ctx, const char *name, size_t cap, size_t *out) {
    /* CPU runtimes (PoCL) run a work-group's items as loops between barriers: a tree
     * reduction at every time step splits the kernel into many such loops and stops
     * vectorization. One item per group makes it one serial loop, which on PoCL runs the
     * Lyapunov LIF pass 4-5x faster (snncl bench --mode forward-lyapunov). */
    if (ctx->info.type == SNN_DEVICE_CPU) {
        cl_kernel k;
        size_t max_wg;
        SNN_TRY(snn_kernel_get(ctx, name, &k, &max_wg));
        *out = 1;
        return SNN_OK;
    }
    return snn_kernel_wg(ctx, name, cap, out);
}

static snn_status launch(snn_context *ctx, const char *name, int dims, const size_t *global, const size_t *local,
                         int nargs, const snn_arg *args) {
    for (int d = 0; d < dims; d++)
        if (global[d] == 0) return SNN_OK;
    cl_kernel k;
    SNN_TRY(snn_kernel_get(ctx, name, &k, NULL));
    for (int i = 0; i < nargs; i++) {
        cl_int err = clSetKernelArg(k, (cl_uint)i, args[i].size, args[i].ptr);
        if (err != CL_SUCCESS)
            return snn_fail(SNN_ERR_OPENCL, "clSetKernelArg(%s, %d) failed: %s", name, i,
                            snn_cl_error_name(err));
    }
    /* Without an explicit work-group size, runtimes may pick tiny groups (PoCL runs
     * single work-items then, far slower). Every kernel bounds-checks its first index,
     * so the first dimension is rounded up to whole groups of up to 256. */
    size_t auto_global[3], auto_local[3] = {1, 1, 1};
    if (!local && dims >= 1 && dims <= 3) {
        size_t wg = 1, max_wg = 1;
        SNN_TRY(snn_kernel_get(ctx, name, &k, &max_wg));
        while (wg * 2 <= 256 && wg * 2 <= max_wg && wg < global[0]) wg *= 2;
        for (int d = 0; d < dims; d++) auto_global[d] = global[d];
        auto_global[0] = (global[0] + wg - 1) / wg * wg;
        auto_local[0] = wg;
        global = auto_global;
        local = auto_local;
    }
    const double t0 = snn_profile_start(ctx);
    cl_int err = snn_fault_hit(SNN_FAULT_LAUNCH);
    if (err == CL_SUCCESS) err = clEnqueueNDRangeKernel(ctx->queue, k, (cl_uint)dims, NULL, global, local, 0, NULL, NULL);
    if (ctx->profile && err == CL_SUCCESS)
        for (int i = 0; i < ctx->num_kernels; i++)
            if (ctx->kernels[i].kernel == k) snn_profile_stop(ctx, i, t0);
    if (err != CL_SUCCESS)
        return snn_fail(err == CL_OUT_OF_RESOURCES || err == CL_MEM_OBJECT_ALLOCATION_FAILURE
                            ? SNN_ERR_OUT_OF_MEMORY
                            : SNN_ERR_OPENCL,
                        "launching %s failed: %s", name, snn_cl_error_name(err));
    return SNN_OK;
}

/* The kernel cache and a kernel's arguments are the context's: one thread at a time. */
snn_status snn_kernel_get(snn_context *ctx, const char *name, cl_kernel *out, size_t *max_wg) {
    SNN_LOCK(ctx);
    const snn_status st = kernel_get(ctx, name, out, max_wg);
    SNN_UNLOCK(ctx);
    return st;
}

snn_status snn_launch(snn_context *ctx, const char *name, int dims, const size_t *global,
                      const size_t *local, int nargs, const snn_arg *args) {
    SNN_LOCK(ctx);
    const snn_status st = launch(ctx, name, dims, global, local, nargs, args);
    SNN_UNLOCK(ctx);
    return st;
}

/* ---------------------------------------------------------------- buffers -- */

/* What the release callback needs: it makes no OpenCL calls on the dying buffer (the
 * NVIDIA runtime crashed when it queried the buffer's size there), and it does not
 * touch the context, which may be gone by then. */
typedef struct buffer_note {
    struct snn_mem_count *mem;
    size_t bytes;
} buffer_note;

void snn_mem_count_unref(struct snn_mem_count *m) {
    if (m && __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0) free(m);
}

static void CL_CALLBACK buffer_released(cl_mem mem, void *user) {
    (void)mem;
    buffer_note *note = user;
    __atomic_sub_fetch(&note->mem->in_use, note->bytes, __ATOMIC_RELAXED);
    snn_mem_count_unref(note->mem);
    free(note);
}

snn_status snn_context_memory(const snn_context *ctx, size_t *in_use, size_t *peak) {
    if (!ctx) return snn_fail(SNN_ERR_INVALID_ARG, "snn_context_memory: ctx is NULL");
    if (in_use) *in_use = __atomic_load_n(&ctx->mem->in_use, __ATOMIC_RELAXED);
    if (peak) *peak = __atomic_load_n(&ctx->mem->peak, __ATOMIC_RELAXED);
    return SNN_OK;
}

snn_status snn_context_reset_peak(snn_context *ctx) {
    if (!ctx) return snn_fail(SNN_ERR_INVALID_ARG, "snn_context_reset_peak: ctx is NULL");
    __atomic_store_n(&ctx->mem->peak, __atomic_load_n(&ctx->mem->in_use, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
    return SNN_OK;
}

snn_status snn_buffer_create(snn_context *ctx, size_t bytes, cl_mem *out) {
    cl_int err;
    *out = NULL;
    if (bytes == 0) bytes = 16; /* OpenCL rejects empty buffers; keep handles valid */
    if (bytes > ctx->info.max_alloc_bytes)
        return snn_fail(SNN_ERR_OUT_OF_MEMORY,
                        "a buffer of %zu bytes exceeds the device's largest allocation (%llu bytes)",
                        bytes, (unsigned long long)ctx->info.max_alloc_bytes);
    err = snn_fault_hit(SNN_FAULT_ALLOC);
    if (err == CL_SUCCESS) *out = clCreateBuffer(ctx->cl, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS) {
        *out = NULL;
        return snn_fail(SNN_ERR_OUT_OF_MEMORY, "allocating %zu bytes on the device failed: %s", bytes,
                        snn_cl_error_name(err));
    }
    struct snn_mem_count *m = ctx->mem;
    size_t now = __atomic_add_fetch(&m->in_use, bytes, __ATOMIC_RELAXED);
    size_t peak = __atomic_load_n(&m->peak, __ATOMIC_RELAXED);
    while (now > peak && !__atomic_compare_exchange_n(&m->peak, &peak, now, 1, __ATOMIC_RELAXED,
                                                      __ATOMIC_RELAXED)) {
    }
    buffer_note *note = malloc(sizeof *note);
    if (note) {
        *note = (buffer_note){m, bytes};
        __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED); /* the buffer's, dropped by the callback */
    }
    if (!note || clSetMemObjectDestructorCallback(*out, buffer_released, note) != CL_SUCCESS) {
        if (note) snn_mem_count_unref(m);
        free(note);
        __atomic_sub_fetch(&m->in_use, bytes, __ATOMIC_RELAXED); /* untracked, not leaked */
    }
    return SNN_OK;
}

void snn_buffer_release(cl_mem *mem) {
    if (mem && *mem) {
        clReleaseMemObject(*mem);
        *mem = NULL;
    }
}

snn_status snn_dbuf_reserve(snn_context *ctx, snn_dbuf *b, size_t bytes) {
    if (b->mem && b->cap >= bytes) return SNN_OK;
    snn_dbuf_release(b);
    SNN_TRY(snn_buffer_create(ctx, bytes, &b->mem));
    b->cap = bytes;
    return SNN_OK;
}

void snn_dbuf_release(snn_dbuf *b) {
    snn_buffer_release(&b->mem);
    b->cap = 0;
}

snn_status snn_buffer_write(snn_context *ctx, cl_mem mem, size_t offset, size_t bytes,
                            const void *src) {
    if (bytes == 0) return SNN_OK;
    cl_int err = snn_fault_hit(SNN_FAULT_LAUNCH);
    if (err == CL_SUCCESS) err = clEnqueueWriteBuffer(ctx->queue, mem, CL_TRUE, offset, bytes, src, 0, NULL, NULL);
    snn_count_host_sync(ctx, &ctx->host_writes);
    return snn_cl_check(err, "clEnqueueWriteBuffer");
}

snn_status snn_buffer_read(snn_context *ctx, cl_mem mem, size_t offset, size_t bytes, void *dst) {
    if (bytes == 0) return SNN_OK;
    cl_int err = snn_fault_hit(SNN_FAULT_READ);
    if (err == CL_SUCCESS) err = clEnqueueReadBuffer(ctx->queue, mem, CL_TRUE, offset, bytes, dst, 0, NULL, NULL);
    snn_count_host_sync(ctx, &ctx->host_reads);
    return snn_cl_check(err, "clEnqueueReadBuffer");
}

/* ---------------------------------------------------- the caller's buffers -- */

snn_status snn_caller_buffer(const snn_context *ctx, cl_mem mem, size_t offset, size_t bytes, const char *fn,
                             const char *what) {
    if (!mem) return snn_fail(SNN_ERR_INVALID_ARG, "%s: %s is NULL", fn, what);
    cl_context owner = NULL;
    size_t size = 0;
    cl_int err = clGetMemObjectInfo(mem, CL_MEM_CONTEXT, sizeof owner, &owner, NULL);
    if (err == CL_SUCCESS) err = clGetMemObjectInfo(mem, CL_MEM_SIZE, sizeof size, &size, NULL);
    if (err != CL_SUCCESS)
        return snn_fail_cl(SNN_ERR_INVALID_ARG, err, "%s: %s is not a usable buffer (%s)", fn, what,
                           snn_cl_error_name(err));
    if (owner != ctx->cl)
        return snn_fail(SNN_ERR_INVALID_ARG, "%s: %s belongs to another OpenCL context than the snncl context's",
                        fn, what);
    if (offset > size || bytes > size - offset)
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "%s: %s holds %zu bytes; %zu bytes from byte offset %zu are needed", fn, what, size, bytes,
                        offset);
    return SNN_OK;
}

snn_status snn_wait_list_check(cl_uint n, const cl_event *events, const char *fn) {
    if ((n > 0) != (events != NULL))
        return snn_fail(SNN_ERR_INVALID_ARG, "%s: num_wait is %u but wait_list is %s", fn, n,
                        events ? "not NULL" : "NULL");
    for (cl_uint i = 0; i < n; i++)
        if (!events[i]) return snn_fail(SNN_ERR_INVALID_ARG, "%s: wait_list[%u] is NULL", fn, i);
    return SNN_OK;
}

snn_status snn_enqueue_wait(snn_context *ctx, cl_uint n, const cl_event *events) {
    if (n == 0) return SNN_OK;
    /* In an in-order queue, what follows a barrier starts after it completes. */
    return snn_cl_check(clEnqueueBarrierWithWaitList(ctx->queue, n, events, NULL), "clEnqueueBarrierWithWaitList");
}

snn_status snn_enqueue_marker(snn_context *ctx, cl_event *event) {
    if (!event) return SNN_OK;
    cl_event e = NULL;
    SNN_TRY(snn_cl_check(clEnqueueMarkerWithWaitList(ctx->queue, 0, NULL, &e), "clEnqueueMarkerWithWaitList"));
    *event = e;
    return SNN_OK;
}

snn_status snn_buffer_copy(snn_context *ctx, cl_mem src, size_t src_offset, cl_mem dst, size_t dst_offset,
                           size_t bytes) {
    if (bytes == 0) return SNN_OK;
    cl_int err = snn_fault_hit(SNN_FAULT_LAUNCH);
    if (err == CL_SUCCESS)
        err = clEnqueueCopyBuffer(ctx->queue, src, dst, src_offset, dst_offset, bytes, 0, NULL, NULL);
    return snn_cl_check(err, "clEnqueueCopyBuffer");
}

snn_status snn_buffer_fill_zero(snn_context *ctx, cl_mem mem, size_t offset, size_t bytes) {
    static const cl_uchar zero = 0;
    if (bytes == 0) return SNN_OK;
    cl_int err = snn_fault_hit(SNN_FAULT_LAUNCH);
    if (err == CL_SUCCESS) err = clEnqueueFillBuffer(ctx->queue, mem, &zero, 1, offset, bytes, 0, NULL, NULL);
    return snn_cl_check(err, "clEnqueueFillBuffer");
}
