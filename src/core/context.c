/* Device enumeration and selection, program build, kernel cache, buffer helpers. */
#include "context.h"

#include <CL/cl_ext.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl_sources.h"
#include "fault.h"
#include "gemm.h"

const char *snn_cl_error_name(cl_int err) {
    switch (err) {
#define E(x) \
    case x:  \
        return #x;
        E(CL_SUCCESS) E(CL_DEVICE_NOT_FOUND) E(CL_DEVICE_NOT_AVAILABLE) E(CL_COMPILER_NOT_AVAILABLE)
        E(CL_MEM_OBJECT_ALLOCATION_FAILURE) E(CL_OUT_OF_RESOURCES) E(CL_OUT_OF_HOST_MEMORY)
        E(CL_PROFILING_INFO_NOT_AVAILABLE) E(CL_MEM_COPY_OVERLAP) E(CL_IMAGE_FORMAT_MISMATCH)
        E(CL_IMAGE_FORMAT_NOT_SUPPORTED) E(CL_BUILD_PROGRAM_FAILURE) E(CL_MAP_FAILURE)
        E(CL_MISALIGNED_SUB_BUFFER_OFFSET) E(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
        E(CL_COMPILE_PROGRAM_FAILURE) E(CL_LINKER_NOT_AVAILABLE) E(CL_LINK_PROGRAM_FAILURE)
        E(CL_DEVICE_PARTITION_FAILED) E(CL_KERNEL_ARG_INFO_NOT_AVAILABLE) E(CL_INVALID_VALUE)
        E(CL_INVALID_DEVICE_TYPE) E(CL_INVALID_PLATFORM) E(CL_INVALID_DEVICE) E(CL_INVALID_CONTEXT)
        E(CL_INVALID_QUEUE_PROPERTIES) E(CL_INVALID_COMMAND_QUEUE) E(CL_INVALID_HOST_PTR)
        E(CL_INVALID_MEM_OBJECT) E(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR) E(CL_INVALID_IMAGE_SIZE)
        E(CL_INVALID_SAMPLER) E(CL_INVALID_BINARY) E(CL_INVALID_BUILD_OPTIONS) E(CL_INVALID_PROGRAM)
        E(CL_INVALID_PROGRAM_EXECUTABLE) E(CL_INVALID_KERNEL_NAME) E(CL_INVALID_KERNEL_DEFINITION)
        E(CL_INVALID_KERNEL) E(CL_INVALID_ARG_INDEX) E(CL_INVALID_ARG_VALUE) E(CL_INVALID_ARG_SIZE)
        E(CL_INVALID_KERNEL_ARGS) E(CL_INVALID_WORK_DIMENSION) E(CL_INVALID_WORK_GROUP_SIZE)
        E(CL_INVALID_WORK_ITEM_SIZE) E(CL_INVALID_GLOBAL_OFFSET) E(CL_INVALID_EVENT_WAIT_LIST)
        E(CL_INVALID_EVENT) E(CL_INVALID_OPERATION) E(CL_INVALID_GL_OBJECT) E(CL_INVALID_BUFFER_SIZE)
        E(CL_INVALID_MIP_LEVEL) E(CL_INVALID_GLOBAL_WORK_SIZE) E(CL_INVALID_PROPERTY)
#undef E
    }
    return "unknown OpenCL error";
}

snn_status snn_cl_check(cl_int err, const char *what) {
    if (err == CL_SUCCESS) return SNN_OK;
    snn_status st = (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_HOST_MEMORY ||
                     err == CL_OUT_OF_RESOURCES || err == CL_INVALID_BUFFER_SIZE)
                        ? SNN_ERR_OUT_OF_MEMORY
                        : SNN_ERR_OPENCL;
    return snn_fail(st, "%s failed: %s (%d)", what, snn_cl_error_name(err), (int)err);
}

/* ------------------------------------------------------------ enumeration -- */

typedef struct device_ref {
    cl_platform_id platform;
    cl_device_id device;
    int platform_index;
} device_ref;

/* Lists every device of every platform into refs (up to cap); *count gets the total. */
static snn_status list_devices(device_ref *refs, int cap, int *count) {
    cl_uint np = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &np);
    *count = 0;
    if (err == CL_PLATFORM_NOT_FOUND_KHR || np == 0) return SNN_OK; /* no ICD: no devices */
    SNN_TRY(snn_cl_check(err, "clGetPlatformIDs"));
    cl_platform_id plats[32];
    if (np > 32) np = 32;
    SNN_TRY(snn_cl_check(clGetPlatformIDs(np, plats, NULL), "clGetPlatformIDs"));
    for (cl_uint p = 0; p < np; p++) {
        cl_uint nd = 0;
        err = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd);
        if (err != CL_SUCCESS || nd == 0) continue; /* a platform without devices */
        cl_device_id devs[64];
        if (nd > 64) nd = 64;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, devs, NULL) != CL_SUCCESS) continue;
        for (cl_uint d = 0; d < nd; d++) {
            if (*count < cap) refs[*count] = (device_ref){plats[p], devs[d], (int)p};
            (*count)++;
        }
    }
    return SNN_OK;
}

#define MAX_DEVICES 128

snn_status snn_device_count(int *count) {
    device_ref refs[MAX_DEVICES];
    if (!count) return snn_fail(SNN_ERR_INVALID_ARG, "snn_device_count: count is NULL");
    SNN_TRY(list_devices(refs, MAX_DEVICES, count));
    if (*count > MAX_DEVICES) *count = MAX_DEVICES;
    return SNN_OK;
}

static void get_str(cl_device_id d, cl_device_info what, char *buf, size_t n) {
    buf[0] = '\0';
    if (clGetDeviceInfo(d, what, n, buf, NULL) != CL_SUCCESS) buf[0] = '\0';
    buf[n - 1] = '\0';
}

static void fill_info(const device_ref *ref, int index, snn_device_info *info) {
    memset(info, 0, sizeof *info);
    info->index = index;
    info->platform_index = ref->platform_index;
    cl_device_id d = ref->device;
    get_str(d, CL_DEVICE_NAME, info->name, sizeof info->name);
    get_str(d, CL_DEVICE_VENDOR, info->vendor, sizeof info->vendor);
    get_str(d, CL_DRIVER_VERSION, info->driver_version, sizeof info->driver_version);
    get_str(d, CL_DEVICE_VERSION, info->device_version, sizeof info->device_version);
    get_str(d, CL_DEVICE_OPENCL_C_VERSION, info->c_version, sizeof info->c_version);
    if (clGetPlatformInfo(ref->platform, CL_PLATFORM_NAME, sizeof info->platform, info->platform,
                          NULL) != CL_SUCCESS)
        info->platform[0] = '\0';
    info->platform[sizeof info->platform - 1] = '\0';
    cl_device_type type = 0;
    cl_uint cu = 0, clock = 0;
    cl_ulong gmem = 0, alloc = 0, lmem = 0;
    size_t wg = 0;
    clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof clock, &clock, NULL);
    clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gmem, &gmem, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof alloc, &alloc, NULL);
    clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof lmem, &lmem, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    info->type = (type & CL_DEVICE_TYPE_GPU)           ? SNN_DEVICE_GPU
                 : (type & CL_DEVICE_TYPE_CPU)         ? SNN_DEVICE_CPU
                 : (type & CL_DEVICE_TYPE_ACCELERATOR) ? SNN_DEVICE_ACCELERATOR
                                                       : SNN_DEVICE_OTHER;
    info->compute_units = cu;
    info->max_clock_mhz = clock;
    info->global_mem_bytes = gmem;
    info->max_alloc_bytes = alloc;
    info->local_mem_bytes = lmem;
    info->max_work_group_size = wg;
    char ext[8192];
    get_str(d, CL_DEVICE_EXTENSIONS, ext, sizeof ext);
    info->has_fp64 = strstr(ext, "cl_khr_fp64") != NULL;
    info->has_fp16 = strstr(ext, "cl_khr_fp16") != NULL;
}

snn_status snn_device_get_info(int index, snn_device_info *info) {
    device_ref refs[MAX_DEVICES];
    int n = 0;
    if (!info) return snn_fail(SNN_ERR_INVALID_ARG, "snn_device_get_info: info is NULL");
    SNN_TRY(list_devices(refs, MAX_DEVICES, &n));
    if (index < 0 || index >= n || index >= MAX_DEVICES)
        return snn_fail(SNN_ERR_NO_DEVICE, "snn_device_get_info: index %d out of range (%d device%s found)",
                        index, n, n == 1 ? "" : "s");
    fill_info(&refs[index], index, info);
    return SNN_OK;
}

static int contains_nocase(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n) return 1;
    }
    return n == 0;
}

static int is_index(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

/* "[0] name, [1] name" for error messages. */
static void list_names(const device_ref *refs, int n, char *buf, size_t size) {
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        snn_device_info info;
        fill_info(&refs[i], i, &info);
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s[%d] %s", i ? ", " : "", i, info.name);
    }
}

/* Resolves a selector (index or name substring) to a device. */
static snn_status select_device(const char *sel, device_ref *out, int *index) {
    device_ref refs[MAX_DEVICES];
    int n = 0;
    SNN_TRY(list_devices(refs, MAX_DEVICES, &n));
    if (n > MAX_DEVICES) n = MAX_DEVICES;
    if (n == 0)
        return snn_fail(SNN_ERR_NO_DEVICE,
                        "no OpenCL device found (is an ICD such as pocl-opencl-icd installed?)");
    char names[2048];
    if (is_index(sel)) {
        long i = strlen(sel) > 6 ? n : strtol(sel, NULL, 10);
        if (i < n) {
            *out = refs[i];
            *index = (int)i;
            return SNN_OK;
        }
        list_names(refs, n, names, sizeof names);
        return snn_fail(SNN_ERR_NO_DEVICE, "device index %s out of range; available: %s", sel, names);
    }
    for (int i = 0; i < n; i++) {
        snn_device_info info;
        fill_info(&refs[i], i, &info);
        if (contains_nocase(info.name, sel) || contains_nocase(info.vendor, sel) ||
            contains_nocase(info.platform, sel)) {
            *out = refs[i];
            *index = i;
            return SNN_OK;
        }
    }
    list_names(refs, n, names, sizeof names);
    return snn_fail(SNN_ERR_NO_DEVICE, "no OpenCL device matches '%s'; available: %s", sel, names);
}

/* ---------------------------------------------------------------- program -- */

static snn_status build_program(snn_context *ctx, const char *extra_options) {
    size_t total = 1;
    for (size_t i = 0; i < snn_cl_source_count; i++) total += strlen(snn_cl_sources[i].text) + 64;
    char *src = malloc(total);
    if (!src) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "program source");
    size_t len = 0;
    for (size_t i = 0; i < snn_cl_source_count; i++)
        len += (size_t)snprintf(src + len, total - len, "/* ---- %s ---- */\n%s\n",
                                snn_cl_sources[i].name, snn_cl_sources[i].text);
    const char *csrc = src;
    cl_int err;
    ctx->program = clCreateProgramWithSource(ctx->cl, 1, &csrc, &len, &err);
    free(src);
    SNN_TRY(snn_cl_check(err, "clCreateProgramWithSource"));

    /* Options follow the device: OpenCL C 1.2 semantics, fp64 only where present. */
    char options[1024];
    snprintf(options, sizeof options, "-cl-std=CL1.2%s %s",
             ctx->info.has_fp64 ? " -DSNN_HAS_FP64=1" : "", extra_options ? extra_options : "");
    err = clBuildProgram(ctx->program, 1, &ctx->device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        size_t log_len = 0;
        clGetProgramBuildInfo(ctx->program, ctx->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &log_len);
        char *log = malloc(log_len + 1);
        if (log) {
            if (clGetProgramBuildInfo(ctx->program, ctx->device, CL_PROGRAM_BUILD_LOG, log_len,
                                      log, NULL) != CL_SUCCESS)
                log_len = 0;
            log[log_len] = '\0';
        }
        snn_status st = snn_fail(SNN_ERR_BUILD,
                                 "snn_context_create: building snncl kernels for %s with '%s' failed (%s):\n%s",
                                 ctx->info.name, options, snn_cl_error_name(err), log ? log : "");
        snn_log(SNN_LOG_ERROR, "%s", snn_last_error());
        free(log);
        return st;
    }
    return SNN_OK;
}

void snn_context_params_default(snn_context_params *params) {
    if (params) memset(params, 0, sizeof *params);
}

snn_status snn_context_create(snn_context **out, const snn_context_params *params) {
    if (!out) return snn_fail(SNN_ERR_INVALID_ARG, "snn_context_create: out is NULL");
    *out = NULL;
    snn_context_params defaults;
    if (!params) {
        snn_context_params_default(&defaults);
        params = &defaults;
    }
    const char *sel = params->device, *source = "params->device";
    if (!sel || !*sel) {
        sel = getenv("SNNCL_DEVICE");
        source = "$SNNCL_DEVICE";
    }
    if (!sel || !*sel) {
        sel = "0";
        source = "the default device";
    }

    device_ref ref;
    int index = 0;
    snn_status selected = select_device(sel, &ref, &index);
    if (selected != SNN_OK) return snn_fail_context(selected, "snn_context_create: %s", source);

    snn_context *ctx = calloc(1, sizeof *ctx);
    if (ctx) ctx->mem = calloc(1, sizeof *ctx->mem);
    if (!ctx || !ctx->mem) {
        free(ctx);
        return snn_fail(SNN_ERR_OUT_OF_MEMORY, "context");
    }
    ctx->mem->refs = 1; /* the context's */
    ctx->platform = ref.platform;
    ctx->device = ref.device;
    fill_info(&ref, index, &ctx->info);
    const char *prof = getenv("SNNCL_PROFILE");
    ctx->profile = prof && *prof && strcmp(prof, "0") != 0;

    snn_status st;
    cl_int err;
    /* Tests arm device faults for the whole process through the environment. */
    SNN_CHECK_GOTO(st, snn_fault_from_env(), fail);
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)ref.platform, 0};
    ctx->cl = clCreateContext(props, 1, &ref.device, NULL, NULL, &err);
    SNN_CHECK_GOTO(st, snn_cl_check(err, "clCreateContext"), fail);
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    /* The 1.2 entry point, present on every runtime we target. */
    ctx->queue = clCreateCommandQueue(ctx->cl, ref.device, 0, &err);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
    SNN_CHECK_GOTO(st, snn_cl_check(err, "clCreateCommandQueue"), fail);
    SNN_CHECK_GOTO(st, build_program(ctx, params->build_options), fail);
    SNN_CHECK_GOTO(st, snn_gemm_setup(ctx), fail);
    snn_log(SNN_LOG_INFO, "using device %d: %s (%s)", index, ctx->info.name, ctx->info.platform);
    *out = ctx;
    return SNN_OK;
fail:
    snn_context_free(ctx);
    return st;
}

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

static void profile_report(const snn_context *ctx) {
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
}

static void mem_count_unref(struct snn_mem_count *m) {
    if (m && __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0) free(m);
}

void snn_context_free(snn_context *ctx) {
    if (!ctx) return;
    if (ctx->queue) clFinish(ctx->queue);
    if (ctx->profile) profile_report(ctx);
    for (int i = 0; i < ctx->num_kernels; i++) clReleaseKernel(ctx->kernels[i].kernel);
    snn_buffer_release(&ctx->gemm_ws);
    if (ctx->program) clReleaseProgram(ctx->program);
    if (ctx->queue) clReleaseCommandQueue(ctx->queue);
    if (ctx->cl) clReleaseContext(ctx->cl);
    mem_count_unref(ctx->mem); /* buffers still alive keep the counts */
    free(ctx);
}

snn_status snn_context_device_info(const snn_context *ctx, snn_device_info *info) {
    SNN_REQUIRE_ARG("snn_context_device_info", ctx);
    SNN_REQUIRE_ARG("snn_context_device_info", info);
    *info = ctx->info;
    return SNN_OK;
}

snn_status snn_context_finish(snn_context *ctx) {
    if (!ctx) return snn_fail(SNN_ERR_INVALID_ARG, "snn_context_finish: ctx is NULL");
    cl_int err = snn_fault_hit(SNN_FAULT_READ);
    if (err == CL_SUCCESS) err = clFinish(ctx->queue);
    return snn_cl_check(err, "clFinish");
}

/* ---------------------------------------------------------------- kernels -- */

snn_status snn_kernel_get(snn_context *ctx, const char *name, cl_kernel *out, size_t *max_wg) {
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

snn_status snn_launch(snn_context *ctx, const char *name, int dims, const size_t *global,
                      const size_t *local, int nargs, const snn_arg *args) {
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

/* ---------------------------------------------------------------- buffers -- */

/* What the release callback needs: it makes no OpenCL calls on the dying buffer (the
 * NVIDIA runtime crashed when it queried the buffer's size there), and it does not
 * touch the context, which may be gone by then. */
typedef struct buffer_note {
    struct snn_mem_count *mem;
    size_t bytes;
} buffer_note;

static void CL_CALLBACK buffer_released(cl_mem mem, void *user) {
    (void)mem;
    buffer_note *note = user;
    __atomic_sub_fetch(&note->mem->in_use, note->bytes, __ATOMIC_RELAXED);
    mem_count_unref(note->mem);
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
        if (note) mem_count_unref(m);
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

snn_status snn_buffer_reserve(snn_context *ctx, cl_mem *mem, size_t *cap, size_t bytes) {
    if (*mem && *cap >= bytes) return SNN_OK;
    snn_buffer_release(mem);
    *cap = 0;
    SNN_TRY(snn_buffer_create(ctx, bytes, mem));
    *cap = bytes;
    return SNN_OK;
}

snn_status snn_buffer_write(snn_context *ctx, cl_mem mem, size_t offset, size_t bytes,
                            const void *src) {
    if (bytes == 0) return SNN_OK;
    cl_int err = snn_fault_hit(SNN_FAULT_LAUNCH);
    if (err == CL_SUCCESS) err = clEnqueueWriteBuffer(ctx->queue, mem, CL_TRUE, offset, bytes, src, 0, NULL, NULL);
    return snn_cl_check(err, "clEnqueueWriteBuffer");
}

snn_status snn_buffer_read(snn_context *ctx, cl_mem mem, size_t offset, size_t bytes, void *dst) {
    if (bytes == 0) return SNN_OK;
    cl_int err = snn_fault_hit(SNN_FAULT_READ);
    if (err == CL_SUCCESS) err = clEnqueueReadBuffer(ctx->queue, mem, CL_TRUE, offset, bytes, dst, 0, NULL, NULL);
    return snn_cl_check(err, "clEnqueueReadBuffer");
}

snn_status snn_buffer_fill_zero(snn_context *ctx, cl_mem mem, size_t offset, size_t bytes) {
    static const cl_uchar zero = 0;
    if (bytes == 0) return SNN_OK;
    cl_int err = snn_fault_hit(SNN_FAULT_LAUNCH);
    if (err == CL_SUCCESS) err = clEnqueueFillBuffer(ctx->queue, mem, &zero, 1, offset, bytes, 0, NULL, NULL);
    return snn_cl_check(err, "clEnqueueFillBuffer");
}
