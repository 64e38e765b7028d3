/* snncl as one stage of a program's own OpenCL pipeline, with no copy through the
 * host: the program makes its context and queue, turns raw 8-bit pixels into
 * normalized floats with a kernel of its own, runs snncl's forward pass on that
 * buffer, and takes the predicted class of each sample with another kernel of its
 * own. Each stage waits for the one before through an event. At the end it checks
 * that the logits equal those of the host-array API (snn_model_forward) bit for bit.
 *   cc opencl_pipeline.c $(pkg-config --cflags --libs snncl OpenCL) && ./a.out [model.safetensors]
 * Without a model file it makes a fresh `simple` model for 28x28 grayscale images. */
#include <snncl_opencl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                              \
    do {                                                                                         \
        snn_status s_ = (call);                                                                  \
        if (s_ != SNN_OK) {                                                                      \
            fprintf(stderr, "%s failed: %s: %s\n", #call, snn_status_str(s_), snn_last_error()); \
            exit(1);                                                                             \
        }                                                                                        \
    } while (0)

#define CL_CHECK(call)                                                          \
    do {                                                                        \
        cl_int e_ = (call);                                                     \
        if (e_ != CL_SUCCESS) {                                                 \
            fprintf(stderr, "%s failed: OpenCL error %d\n", #call, (int)e_);    \
            exit(1);                                                            \
        }                                                                       \
    } while (0)

/* The program's own kernels: before snncl, bytes to normalized floats; after it, the
 * index of each row's largest logit. */
static const char *own_source =
    "__kernel void bytes_to_input(__global const uchar *raw, __global float *out, const float mean,\n"
    "                        const float inv_std, const uint n) {\n"
    "    const uint i = get_global_id(0);\n"
    "    if (i < n) out[i] = ((float)raw[i] / 255.0f - mean) * inv_std;\n"
    "}\n"
    "__kernel void pick_class(__global const float *logits, __global int *pred, const uint classes,\n"
    "                     const uint rows) {\n"
    "    const uint r = get_global_id(0);\n"
    "    if (r >= rows) return;\n"
    "    int best = 0;\n"
    "    for (uint k = 1; k < classes; k++)\n"
    "        if (logits[r * classes + k] > logits[r * classes + best]) best = (int)k;\n"
    "    pred[r] = best;\n"
    "}\n";

enum { B = 8 };

int main(int argc, char **argv) {
    /* ---- the program's own OpenCL objects: the first device of the first platform */
    cl_platform_id platform;
    cl_device_id device;
    cl_int err;
    CL_CHECK(clGetPlatformIDs(1, &platform, NULL));
    CL_CHECK(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL));
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)platform, 0};
    cl_context context = clCreateContext(props, 1, &device, NULL, NULL, &err);
    CL_CHECK(err);
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    cl_command_queue queue = clCreateCommandQueue(context, device, 0, &err); /* in order */
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
    CL_CHECK(err);
    cl_program program = clCreateProgramWithSource(context, 1, &own_source, NULL, &err);
    CL_CHECK(err);
    CL_CHECK(clBuildProgram(program, 1, &device, "", NULL, NULL));
    cl_kernel normalize = clCreateKernel(program, "bytes_to_input", &err);
    CL_CHECK(err);
    cl_kernel argmax = clCreateKernel(program, "pick_class", &err);
    CL_CHECK(err);

    /* ---- snncl on the same context and queue. dense_only: no call waits for the
     * device inside (see snncl_opencl.h), so the pipeline below runs through. */
    snn_context_params cp;
    snn_context_params_default(&cp);
    cp.dense_only = 1;
    snn_context *ctx;
    CHECK(snn_context_create_cl(&ctx, context, device, queue, &cp));
    snn_model *model;
    if (argc > 1) {
        CHECK(snn_model_load(&model, ctx, argv[1]));
    } else {
        snn_model_config cfg;
        CHECK(snn_model_config_default(&cfg, "simple"));
        cfg.in_channels = 1, cfg.height = cfg.width = 28;
        cfg.channels[0] = 8, cfg.channels[1] = 16, cfg.num_blocks = 2;
        cfg.T = 6, cfg.encoding = SNN_ENCODING_DIRECT;
        CHECK(snn_model_create(&model, ctx, &cfg, 42));
    }
    snn_model_config cfg;
    CHECK(snn_model_get_config(model, &cfg));
    const size_t n = (size_t)B * cfg.in_channels * cfg.height * cfg.width, K = (size_t)cfg.num_classes;

    /* ---- the raw data, as a camera or a decoder would leave it on the device */
    unsigned char *raw = malloc(n);
    if (!raw) return 1;
    for (size_t i = 0; i < n; i++) raw[i] = (unsigned char)((i * 2654435761u) >> 13);
    cl_mem raw_buf = clCreateBuffer(context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, n, raw, &err);
    CL_CHECK(err);
    cl_mem images = clCreateBuffer(context, CL_MEM_READ_WRITE, n * sizeof(float), NULL, &err);
    CL_CHECK(err);
    cl_mem logits = clCreateBuffer(context, CL_MEM_READ_WRITE, B * K * sizeof(float), NULL, &err);
    CL_CHECK(err);
    cl_mem lambda = clCreateBuffer(context, CL_MEM_READ_WRITE, B * sizeof(float), NULL, &err);
    CL_CHECK(err);
    cl_mem pred = clCreateBuffer(context, CL_MEM_WRITE_ONLY, B * sizeof(cl_int), NULL, &err);
    CL_CHECK(err);

    /* stage 1 (the program's): normalize, with Fashion-MNIST's mean and deviation */
    const float mean = 0.2860f, inv_std = 1.0f / 0.3530f;
    const cl_uint un = (cl_uint)n, uk = (cl_uint)K, ub = B;
    CL_CHECK(clSetKernelArg(normalize, 0, sizeof raw_buf, &raw_buf));
    CL_CHECK(clSetKernelArg(normalize, 1, sizeof images, &images));
    CL_CHECK(clSetKernelArg(normalize, 2, sizeof mean, &mean));
    CL_CHECK(clSetKernelArg(normalize, 3, sizeof inv_std, &inv_std));
    CL_CHECK(clSetKernelArg(normalize, 4, sizeof un, &un));
    size_t global = n;
    cl_event normalized, classified, predicted;
    CL_CHECK(clEnqueueNDRangeKernel(queue, normalize, 1, NULL, &global, NULL, 0, NULL, &normalized));

    /* stage 2 (snncl's): the forward pass and the Lyapunov estimate on `images` */
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.lyapunov = 1;
    fp.seed = 7;
    CHECK(snn_model_forward_cl(model, images, 0, B, &fp, logits, 0, lambda, 0, 1, &normalized, &classified));

    /* stage 3 (the program's): the predicted classes */
    CL_CHECK(clSetKernelArg(argmax, 0, sizeof logits, &logits));
    CL_CHECK(clSetKernelArg(argmax, 1, sizeof pred, &pred));
    CL_CHECK(clSetKernelArg(argmax, 2, sizeof uk, &uk));
    CL_CHECK(clSetKernelArg(argmax, 3, sizeof ub, &ub));
    global = B;
    CL_CHECK(clEnqueueNDRangeKernel(queue, argmax, 1, NULL, &global, NULL, 1, &classified, &predicted));

    /* ---- the results, read once at the end */
    cl_int classes[B];
    float got[B * 64], lam[B];
    if (K > 64) return 1;
    CL_CHECK(clEnqueueReadBuffer(queue, pred, CL_TRUE, 0, sizeof classes, classes, 1, &predicted, NULL));
    CL_CHECK(clEnqueueReadBuffer(queue, logits, CL_TRUE, 0, B * K * sizeof(float), got, 0, NULL, NULL));
    CL_CHECK(clEnqueueReadBuffer(queue, lambda, CL_TRUE, 0, sizeof lam, lam, 0, NULL, NULL));
    for (int b = 0; b < B; b++) printf("sample %d: class %d, lambda %+.4f\n", b, classes[b], (double)lam[b]);

    /* ---- the same batch through the host-array API: the same bits */
    float *host_images = malloc(n * sizeof(float)), want[B * 64], want_lam[B];
    if (!host_images) return 1;
    CL_CHECK(clEnqueueReadBuffer(queue, images, CL_TRUE, 0, n * sizeof(float), host_images, 0, NULL, NULL));
    CHECK(snn_model_forward(model, host_images, B, &fp, want, NULL, want_lam));
    const int same = memcmp(got, want, B * K * sizeof(float)) == 0 && memcmp(lam, want_lam, sizeof lam) == 0;
    printf("logits and estimates equal snn_model_forward's bit for bit: %s\n", same ? "yes" : "NO");

    free(host_images);
    free(raw);
    clReleaseEvent(normalized);
    clReleaseEvent(classified);
    clReleaseEvent(predicted);
    snn_model_free(model);
    snn_context_free(ctx); /* releases only snncl's own references */
    cl_mem bufs[] = {raw_buf, images, logits, lambda, pred};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) clReleaseMemObject(bufs[i]);
    clReleaseKernel(normalize);
    clReleaseKernel(argmax);
    clReleaseProgram(program);
    clReleaseCommandQueue(queue);
    clReleaseContext(context);
    return same ? 0 : 1;
}
