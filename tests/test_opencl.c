/* snncl on the caller's OpenCL objects (include/snncl_opencl.h): a context made on a
 * cl_context, device and queue of the test's own computes what a context of snncl's
 * own computes, bit for bit; snncl retains what it is given and gives back exactly
 * its own references; a queue of another context, or one that runs out of order, is
 * refused with the reason; snn_last_cl_error() gives the OpenCL code behind a failed
 * call, and 0 after any other failure. Bad arguments of these functions are here too (their
 * entries in the public-function coverage of test_api_errors). */
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "snncl_opencl.h"
#include "testutil.h"

/* The test's own OpenCL objects on snncl's default device. */
typedef struct own_cl {
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
} own_cl;

static cl_command_queue make_queue(cl_context c, cl_device_id d, cl_command_queue_properties props) {
    cl_int err;
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    cl_command_queue q = clCreateCommandQueue(c, d, props, &err);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
    return err == CL_SUCCESS ? q : NULL;
}

static void own_cl_open(own_cl *o) {
    cl_context_properties props[3];
    cl_int err;
    /* the device snncl's default context uses */
    ck_assert_snn_ok(snn_context_get_cl(test_context(), NULL, &o->device, NULL));
    ck_assert_int_eq(clGetDeviceInfo(o->device, CL_DEVICE_PLATFORM, sizeof o->platform, &o->platform, NULL),
                     CL_SUCCESS);
    props[0] = CL_CONTEXT_PLATFORM;
    props[1] = (cl_context_properties)o->platform;
    props[2] = 0;
    o->context = clCreateContext(props, 1, &o->device, NULL, NULL, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    o->queue = make_queue(o->context, o->device, 0);
    ck_assert_ptr_nonnull(o->queue);
}

static void own_cl_close(own_cl *o) {
    clReleaseCommandQueue(o->queue);
    clReleaseContext(o->context);
}

static cl_uint context_refs(cl_context c) {
    cl_uint n = 0;
    ck_assert_int_eq(clGetContextInfo(c, CL_CONTEXT_REFERENCE_COUNT, sizeof n, &n, NULL), CL_SUCCESS);
    return n;
}

static cl_uint queue_refs(cl_command_queue q) {
    cl_uint n = 0;
    ck_assert_int_eq(clGetCommandQueueInfo(q, CL_QUEUE_REFERENCE_COUNT, sizeof n, &n, NULL), CL_SUCCESS);
    return n;
}

/* Logits (and the estimate) of a small fresh model on ctx, with fixed seeds. */
static void small_forward(snn_context *ctx, float *logits, float *lyap) {
    snn_model_config cfg;
    ck_assert_snn_ok(snn_model_config_default(&cfg, "simple"));
    cfg.channels[0] = 4;
    cfg.channels[1] = 8;
    cfg.num_blocks = 2;
    cfg.in_channels = 1;
    cfg.height = cfg.width = 8;
    cfg.T = 3;
    snn_model *m = NULL;
    ck_assert_snn_ok(snn_model_create(&m, ctx, &cfg, 42));
    float x[2 * 64];
    test_rng r;
    test_rng_seed(&r, 7);
    test_fill_uniform(&r, x, 2 * 64, 0.0f, 1.0f);
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.lyapunov = 1;
    fp.seed = 3;
    ck_assert_snn_ok(snn_model_forward(m, x, 2, &fp, logits, lyap, NULL));
    snn_model_free(m);
}

START_TEST(test_same_results_on_callers_objects) {
    own_cl o;
    own_cl_open(&o);
    snn_context *ctx = NULL;
    ck_assert_snn_ok(snn_context_create_cl(&ctx, o.context, o.device, o.queue, NULL));
    cl_context c = NULL;
    cl_device_id d = NULL;
    cl_command_queue q = NULL;
    ck_assert_snn_ok(snn_context_get_cl(ctx, &c, &d, &q));
    ck_assert_ptr_eq(c, o.context);
    ck_assert_ptr_eq(d, o.device);
    ck_assert_ptr_eq(q, o.queue);
    snn_device_info a, b;
    ck_assert_snn_ok(snn_context_device_info(ctx, &a));
    ck_assert_snn_ok(snn_context_device_info(test_context(), &b));
    ck_assert_int_eq(a.index, b.index);
    ck_assert_str_eq(a.name, b.name);

    float mine[20], theirs[20], lmine, ltheirs;
    small_forward(ctx, mine, &lmine);
    small_forward(test_context(), theirs, &ltheirs);
    ck_assert_msg(memcmp(mine, theirs, sizeof mine) == 0, "logits differ between the two contexts");
    ck_assert_msg(memcmp(&lmine, &ltheirs, sizeof lmine) == 0, "estimates differ: %g vs %g", (double)lmine,
                  (double)ltheirs);
    snn_context_free(ctx);
    own_cl_close(&o);
}
END_TEST

/* snncl holds one reference to each object it was given while it lives, none after. */
START_TEST(test_references_given_back) {
    own_cl o;
    own_cl_open(&o);
    const cl_uint c0 = context_refs(o.context), q0 = queue_refs(o.queue);
    snn_context *ctx = NULL;
    ck_assert_snn_ok(snn_context_create_cl(&ctx, o.context, o.device, o.queue, NULL));
    ck_assert_uint_eq(queue_refs(o.queue), q0 + 1);
    ck_assert_uint_ge(context_refs(o.context), c0 + 1);
    snn_context_free(ctx);
    ck_assert_uint_eq(context_refs(o.context), c0);
    ck_assert_uint_eq(queue_refs(o.queue), q0);

    /* without a queue: snncl makes its own on the caller's context, and frees it */
    ck_assert_snn_ok(snn_context_create_cl(&ctx, o.context, o.device, NULL, NULL));
    cl_command_queue q = NULL;
    cl_context qc = NULL;
    ck_assert_snn_ok(snn_context_get_cl(ctx, NULL, NULL, &q));
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_ne(q, o.queue);
    ck_assert_int_eq(clGetCommandQueueInfo(q, CL_QUEUE_CONTEXT, sizeof qc, &qc, NULL), CL_SUCCESS);
    ck_assert_ptr_eq(qc, o.context);
    float logits[20], lyap;
    small_forward(ctx, logits, &lyap);
    snn_context_free(ctx);
    ck_assert_uint_eq(context_refs(o.context), c0);
    own_cl_close(&o);
}
END_TEST

START_TEST(test_refusals) {
    own_cl o, other;
    own_cl_open(&o);
    own_cl_open(&other);
    const cl_uint c0 = context_refs(o.context);
    snn_context *ctx = (snn_context *)&o; /* must become NULL on failure */
    /* a queue of another context */
    ck_assert_snn_status(snn_context_create_cl(&ctx, o.context, o.device, other.queue, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(ctx);
    ck_assert_ptr_nonnull(strstr(snn_last_error(), "another context"));
    ck_assert_int_eq(snn_last_cl_error(), 0);
    /* a queue that runs out of order, where the device offers one */
    cl_command_queue ooo = make_queue(o.context, o.device, CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE);
    if (ooo) {
        ck_assert_snn_status(snn_context_create_cl(&ctx, o.context, o.device, ooo, NULL), SNN_ERR_INVALID_ARG);
        ck_assert_ptr_nonnull(strstr(snn_last_error(), "out of order"));
        clReleaseCommandQueue(ooo);
    }
    /* NULL handles */
    ck_assert_snn_status(snn_context_create_cl(NULL, o.context, o.device, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_context_create_cl(&ctx, NULL, o.device, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_context_create_cl(&ctx, o.context, NULL, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_context_get_cl(NULL, NULL, NULL, NULL), SNN_ERR_INVALID_ARG);
    /* nothing was retained by the refusals */
    ck_assert_uint_eq(context_refs(o.context), c0);
    own_cl_close(&other);
    own_cl_close(&o);
}
END_TEST

START_TEST(test_last_cl_error) {
    snn_context *ctx = test_context();
    float logits[20], lyap;
    small_forward(ctx, logits, &lyap); /* warm: kernels built, buffers made */
    snn_model_config cfg;
    ck_assert_snn_ok(snn_model_config_default(&cfg, "simple"));
    cfg.num_blocks = 1;
    cfg.channels[0] = 4;
    cfg.in_channels = 1;
    cfg.height = cfg.width = 4;
    cfg.T = 2;
    snn_model *m = NULL;
    ck_assert_snn_ok(snn_model_create(&m, ctx, &cfg, 1));
    float x[16] = {0};
    /* an injected OpenCL failure of the next kernel launch: its code */
    snn_fault_arm(SNN_FAULT_LAUNCH, 0, CL_INVALID_KERNEL_ARGS);
    ck_assert_snn_status(snn_model_forward(m, x, 1, NULL, logits, NULL, NULL), SNN_ERR_OPENCL);
    snn_fault_disarm();
    ck_assert_int_eq(snn_last_cl_error(), CL_INVALID_KERNEL_ARGS);
    /* a failure of another kind resets it */
    ck_assert_snn_status(snn_model_forward(m, x, 0, NULL, logits, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_int_eq(snn_last_cl_error(), 0);
    /* and the model still works */
    ck_assert_snn_ok(snn_model_forward(m, x, 1, NULL, logits, NULL, NULL));
    snn_model_free(m);
}
END_TEST

int main(void) {
    Suite *s = suite_create("opencl");
    TCase *tc = tcase_create("opencl");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_same_results_on_callers_objects);
    tcase_add_test(tc, test_references_given_back);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_last_cl_error);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
