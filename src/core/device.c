/* Devices and the context's life cycle: enumeration and selection, the program built
 * from cl/, the GEMM's setup (snn_device_*, snn_context_create/free and friends),
 * contexts on the caller's OpenCL objects (snn_context_create_cl, snncl_opencl.h). */
#include <CL/cl_ext.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_sources.h"
#include "context.h"
#include "fault.h"
#include "gemm.h"
#include "snncl_opencl.h"

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

void snn_device_info_init(snn_device_info *info) {
    if (info) memset(info, 0, sizeof *info);
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
    char options[1024], gemm[128];
    snn_gemm_build_options(ctx, gemm, sizeof gemm);
    snprintf(options, sizeof options, "-cl-std=CL1.2%s%s %s", ctx->info.has_fp64 ? " -DSNN_HAS_FP64=1" : "", gemm,
             extra_options ? extra_options : "");
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

/* A context for ref's device, with the knobs that follow the device type and the
 * environment; its OpenCL context and queue are for the caller to set. */
static snn_status context_alloc(snn_context **out, const device_ref *ref, int index,
                                const snn_context_params *params) {
    if (params->tuning_dir && strlen(params->tuning_dir) >= sizeof ((snn_context *)NULL)->tuning_dir)
        return snn_fail(SNN_ERR_INVALID_ARG, "params->tuning_dir is longer than %zu characters",
                        sizeof ((snn_context *)NULL)->tuning_dir - 1);
    snn_context *ctx = calloc(1, sizeof *ctx);
    if (ctx) ctx->mem = calloc(1, sizeof *ctx->mem);
    if (!ctx || !ctx->mem) {
        free(ctx);
        return snn_fail(SNN_ERR_OUT_OF_MEMORY, "context");
    }
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    const int locked = pthread_mutex_init(&ctx->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    if (locked != 0) {
        free(ctx->mem);
        free(ctx);
        return snn_fail(SNN_ERR_OUT_OF_MEMORY, "context lock");
    }
    ctx->mem->refs = 1; /* the context's */
    ctx->platform = ref->platform;
    ctx->device = ref->device;
    fill_info(ref, index, &ctx->info);
    ctx->use_env = !params->ignore_environment;
    ctx->memory_budget = params->memory_budget;
    const char *prof = ctx->use_env ? getenv("SNNCL_PROFILE") : NULL;
    ctx->profile = prof && *prof && strcmp(prof, "0") != 0;
    ctx->dense_only = params->dense_only != 0;
    ctx->sparse_density = ctx->dense_only                   ? 0.0f
                          : ctx->info.type == SNN_DEVICE_CPU ? SNN_SPARSE_DENSITY_CPU
                                                             : SNN_SPARSE_DENSITY_GPU;
    if (params->tuning_dir) memcpy(ctx->tuning_dir, params->tuning_dir, strlen(params->tuning_dir) + 1);
    ctx->lane_kernels = ctx->info.type != SNN_DEVICE_CPU;
    *out = ctx;
    /* Tests arm device faults for the whole process through the environment. */
    return ctx->use_env ? snn_fault_from_env() : SNN_OK;
}

static snn_status make_queue(snn_context *ctx) {
    cl_int err;
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    /* The 1.2 entry point, present on every runtime we target. */
    ctx->queue = clCreateCommandQueue(ctx->cl, ctx->device, 0, &err);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
    return snn_cl_check(err, "clCreateCommandQueue");
}

/* Opens a context on ref's device: on the caller's OpenCL context and queue when given
 * (retained; snn_context_free releases only these references), else on new ones; then
 * builds the program and sets up the GEMM. */
static snn_status context_open(snn_context **out, const device_ref *ref, int index, cl_context given,
                               cl_command_queue queue, const snn_context_params *params) {
    snn_context *ctx = NULL;
    snn_status st;
    SNN_CHECK_GOTO(st, context_alloc(&ctx, ref, index, params), fail);
    if (given) {
        SNN_CHECK_GOTO(st, snn_cl_check(clRetainContext(given), "clRetainContext"), fail);
        ctx->cl = given;
    } else {
        cl_int err;
        cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)ref->platform, 0};
        ctx->cl = clCreateContext(props, 1, &ref->device, NULL, NULL, &err);
        SNN_CHECK_GOTO(st, snn_cl_check(err, "clCreateContext"), fail);
    }
    if (queue) {
        SNN_CHECK_GOTO(st, snn_cl_check(clRetainCommandQueue(queue), "clRetainCommandQueue"), fail);
        ctx->queue = queue;
    } else {
        SNN_CHECK_GOTO(st, make_queue(ctx), fail);
    }
    SNN_CHECK_GOTO(st, build_program(ctx, params->build_options), fail);
    SNN_CHECK_GOTO(st, snn_gemm_setup(ctx, params->gemm, params->clblast_tuning), fail);
    snn_log(SNN_LOG_INFO, "using device %d: %s (%s)", ctx->info.index, ctx->info.name, ctx->info.platform);
    *out = ctx;
    return SNN_OK;
fail:
    snn_context_free(ctx);
    return st;
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
    if ((!sel || !*sel) && !params->ignore_environment) {
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

    return context_open(out, &ref, index, NULL, NULL, params);
}

/* Whether device is one of context's devices. */
static snn_status device_in_context(cl_context context, cl_device_id device) {
    cl_uint n = 0;
    SNN_TRY(snn_cl_check(clGetContextInfo(context, CL_CONTEXT_NUM_DEVICES, sizeof n, &n, NULL),
                         "snn_context_create_cl: clGetContextInfo(CL_CONTEXT_NUM_DEVICES)"));
    cl_device_id devs[64];
    if (n > 64) n = 64;
    SNN_TRY(snn_cl_check(clGetContextInfo(context, CL_CONTEXT_DEVICES, n * sizeof *devs, devs, NULL),
                         "snn_context_create_cl: clGetContextInfo(CL_CONTEXT_DEVICES)"));
    for (cl_uint i = 0; i < n; i++)
        if (devs[i] == device) return SNN_OK;
    return snn_fail(SNN_ERR_INVALID_ARG, "snn_context_create_cl: the device is not one of the context's %u device%s",
                    n, n == 1 ? "" : "s");
}

/* The caller's queue must belong to the context and device and run in order. */
static snn_status check_queue(cl_command_queue queue, cl_context context, cl_device_id device) {
    cl_context qc = NULL;
    cl_device_id qd = NULL;
    cl_command_queue_properties props = 0;
    SNN_TRY(snn_cl_check(clGetCommandQueueInfo(queue, CL_QUEUE_CONTEXT, sizeof qc, &qc, NULL),
                         "snn_context_create_cl: clGetCommandQueueInfo(CL_QUEUE_CONTEXT)"));
    SNN_TRY(snn_cl_check(clGetCommandQueueInfo(queue, CL_QUEUE_DEVICE, sizeof qd, &qd, NULL),
                         "snn_context_create_cl: clGetCommandQueueInfo(CL_QUEUE_DEVICE)"));
    SNN_TRY(snn_cl_check(clGetCommandQueueInfo(queue, CL_QUEUE_PROPERTIES, sizeof props, &props, NULL),
                         "snn_context_create_cl: clGetCommandQueueInfo(CL_QUEUE_PROPERTIES)"));
    if (qc != context) return snn_fail(SNN_ERR_INVALID_ARG, "snn_context_create_cl: the queue is of another context");
    if (qd != device) return snn_fail(SNN_ERR_INVALID_ARG, "snn_context_create_cl: the queue is of another device");
    if (props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE)
        return snn_fail(SNN_ERR_INVALID_ARG,
                        "snn_context_create_cl: the queue executes out of order; snncl needs an in-order queue");
    return SNN_OK;
}

snn_status snn_context_create_cl(snn_context **out, cl_context context, cl_device_id device, cl_command_queue queue,
                                 const snn_context_params *params) {
    SNN_REQUIRE_ARG("snn_context_create_cl", out);
    *out = NULL;
    SNN_REQUIRE_ARG("snn_context_create_cl", context);
    SNN_REQUIRE_ARG("snn_context_create_cl", device);
    snn_context_params defaults;
    if (!params) {
        snn_context_params_default(&defaults);
        params = &defaults;
    }
    SNN_TRY(device_in_context(context, device));
    if (queue) SNN_TRY(check_queue(queue, context, device));

    /* Its index among snn_device_get_info's devices, if it is one of them (-1: a
     * sub-device, or a platform the ICD loader does not list). */
    device_ref refs[MAX_DEVICES], ref = {NULL, device, -1};
    int n = 0, index = -1;
    SNN_TRY(list_devices(refs, MAX_DEVICES, &n));
    for (int i = 0; i < n && i < MAX_DEVICES; i++)
        if (refs[i].device == device) {
            ref = refs[i];
            index = i;
        }
    if (!ref.platform)
        SNN_TRY(snn_cl_check(clGetDeviceInfo(device, CL_DEVICE_PLATFORM, sizeof ref.platform, &ref.platform, NULL),
                             "snn_context_create_cl: clGetDeviceInfo(CL_DEVICE_PLATFORM)"));

    return context_open(out, &ref, index, context, queue, params);
}

snn_status snn_context_get_cl(const snn_context *ctx, cl_context *context, cl_device_id *device,
                              cl_command_queue *queue) {
    SNN_REQUIRE_ARG("snn_context_get_cl", ctx);
    if (context) *context = ctx->cl;
    if (device) *device = ctx->device;
    if (queue) *queue = ctx->queue;
    return SNN_OK;
}

void snn_context_free(snn_context *ctx) {
    if (!ctx) return;
    if (ctx->queue) clFinish(ctx->queue);
    if (ctx->profile) snn_profile_report(ctx);
    for (int i = 0; i < ctx->num_kernels; i++) clReleaseKernel(ctx->kernels[i].kernel);
    snn_gemm_release(ctx);
    if (ctx->program) clReleaseProgram(ctx->program);
    if (ctx->queue) clReleaseCommandQueue(ctx->queue);
    if (ctx->cl) clReleaseContext(ctx->cl);
    snn_mem_count_unref(ctx->mem); /* buffers still alive keep the counts */
    pthread_mutex_destroy(&ctx->lock);
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
    snn_count_host_sync(ctx, &ctx->host_waits);
    return snn_cl_check(err, "clFinish");
}

