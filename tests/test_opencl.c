/* snncl on the caller's OpenCL objects (include/snncl_opencl.h): a context made on a
 * cl_context, device and queue of the test's own computes what a context of snncl's
 * own computes, bit for bit; snncl retains what it is given and gives back exactly
 * its own references; a queue of another context, or one that runs out of order, is
 * refused with the reason; snn_last_cl_error() gives the OpenCL code behind a failed
 * call, and 0 after any other failure. Bad arguments of these functions are here too (their
 * entries in the public-function coverage of test_api_errors). */
#include <stdlib.h>
#include <string.h>

#include "context.h"
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

/* A small fresh model on ctx, with a fixed seed. */
static snn_model *small_model(snn_context *ctx) {
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
    return m;
}

/* Logits (and the estimate) of small_model on ctx, with fixed seeds. */
static void small_forward(snn_context *ctx, float *logits, float *lyap) {
    snn_model *m = small_model(ctx);
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

static cl_mem make_buffer(cl_context c, size_t floats, const float *init) {
    cl_int err;
    cl_mem b = clCreateBuffer(c, CL_MEM_READ_WRITE | (init ? CL_MEM_COPY_HOST_PTR : 0), floats * sizeof(float),
                              (void *)init, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    return b;
}

static void read_floats(cl_command_queue q, cl_mem b, size_t offset, size_t n, float *out) {
    ck_assert_int_eq(clEnqueueReadBuffer(q, b, CL_TRUE, offset * sizeof(float), n * sizeof(float), out, 0, NULL, NULL),
                     CL_SUCCESS);
}

enum { B = 3, IN = 64, K = 10 };

/* snn_model_forward_cl on the test's buffers, at offsets, equals snn_model_forward bit
 * for bit, on a context with sparse paths (snncl's default) and a dense-only one. */
START_TEST(test_forward_on_device_buffers) {
    own_cl o;
    own_cl_open(&o);
    float x[B * IN];
    test_rng r;
    test_rng_seed(&r, 11);
    test_fill_uniform(&r, x, B * IN, 0.0f, 1.0f);
    for (int dense = 0; dense < 2; dense++) {
        snn_context_params cp;
        snn_context_params_default(&cp);
        cp.dense_only = dense;
        snn_context *ctx = NULL;
        ck_assert_snn_ok(snn_context_create_cl(&ctx, o.context, o.device, o.queue, &cp));
        snn_model *m = small_model(ctx);
        snn_forward_params fp;
        snn_forward_params_default(&fp);
        fp.lyapunov = 1;
        fp.seed = 5;
        float want[B * K], want_lyap[B], mean;
        ck_assert_snn_ok(snn_model_forward(m, x, B, &fp, want, &mean, want_lyap));

        /* the batch at offset 5 of a larger buffer, and at offset 0 of its own */
        float padded[5 + B * IN + 7];
        memset(padded, 0, sizeof padded);
        memcpy(padded + 5, x, sizeof x);
        cl_mem in_off = make_buffer(o.context, SNN_ARRAY_LEN(padded), padded);
        cl_mem in0 = make_buffer(o.context, B * IN, x);
        cl_mem logits = make_buffer(o.context, 2 + B * K, NULL), lyap = make_buffer(o.context, 1 + B, NULL);
        for (int at0 = 0; at0 < 2; at0++) {
            cl_event done = NULL;
            ck_assert_snn_ok(snn_model_forward_cl(m, at0 ? in0 : in_off, at0 ? 0 : 5, B, &fp, logits, 2, lyap, 1, 0,
                                                  NULL, &done));
            ck_assert_ptr_nonnull(done);
            ck_assert_int_eq(clWaitForEvents(1, &done), CL_SUCCESS);
            clReleaseEvent(done);
            float got[B * K], got_lyap[B];
            read_floats(o.queue, logits, 2, B * K, got);
            read_floats(o.queue, lyap, 1, B, got_lyap);
            ck_assert_msg(memcmp(got, want, sizeof got) == 0, "logits differ from snn_model_forward (dense_only %d)",
                          dense);
            ck_assert_msg(memcmp(got_lyap, want_lyap, sizeof got_lyap) == 0,
                          "estimates differ from snn_model_forward (dense_only %d)", dense);
        }
        if (dense) {
            /* Held back by an event of the caller's: the call returns at once, and neither
             * it nor its work waits for the device or copies through the host. */
            cl_int err;
            cl_event gate = clCreateUserEvent(o.context, &err);
            ck_assert_int_eq(err, CL_SUCCESS);
            const unsigned long reads = ctx->host_reads, writes = ctx->host_writes, waits = ctx->host_waits;
            cl_event done = NULL;
            ck_assert_snn_ok(snn_model_forward_cl(m, in0, 0, B, &fp, logits, 0, NULL, 0, 1, &gate, &done));
            ck_assert_uint_eq(ctx->host_reads, reads);
            ck_assert_uint_eq(ctx->host_writes, writes);
            ck_assert_uint_eq(ctx->host_waits, waits);
            cl_int status = CL_COMPLETE;
            ck_assert_int_eq(clGetEventInfo(done, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, NULL),
                             CL_SUCCESS);
            ck_assert_int_ne(status, CL_COMPLETE); /* the gate is still closed */
            ck_assert_int_eq(clSetUserEventStatus(gate, CL_COMPLETE), CL_SUCCESS);
            ck_assert_int_eq(clWaitForEvents(1, &done), CL_SUCCESS);
            float got[B * K];
            read_floats(o.queue, logits, 0, B * K, got);
            ck_assert_msg(memcmp(got, want, sizeof got) == 0, "logits after the gate differ");
            clReleaseEvent(done);
            clReleaseEvent(gate);
        }
        clReleaseMemObject(in_off);
        clReleaseMemObject(in0);
        clReleaseMemObject(logits);
        clReleaseMemObject(lyap);
        snn_model_free(m);
        snn_context_free(ctx);
    }
    own_cl_close(&o);
}
END_TEST

/* Device buffers that cannot serve are refused with the reason, before any work. */
START_TEST(test_forward_cl_refusals) {
    own_cl o, other;
    own_cl_open(&o);
    own_cl_open(&other);
    snn_context *ctx = NULL;
    ck_assert_snn_ok(snn_context_create_cl(&ctx, o.context, o.device, o.queue, NULL));
    snn_model *m = small_model(ctx);
    cl_mem in = make_buffer(o.context, B * IN, NULL), out = make_buffer(o.context, B * K, NULL);
    cl_mem foreign = make_buffer(other.context, B * IN, NULL);
    cl_event done = (cl_event)&o; /* must become NULL on failure */
    ck_assert_snn_status(snn_model_forward_cl(m, in, 1, B, NULL, out, 0, NULL, 0, 0, NULL, &done),
                         SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(done);
    ck_assert_ptr_nonnull(strstr(snn_last_error(), "input holds"));
    ck_assert_snn_status(snn_model_forward_cl(m, in, 0, B, NULL, out, 1, NULL, 0, 0, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(snn_last_error(), "logits holds"));
    ck_assert_snn_status(snn_model_forward_cl(m, foreign, 0, B, NULL, out, 0, NULL, 0, 0, NULL, NULL),
                         SNN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(snn_last_error(), "another OpenCL context"));
    ck_assert_snn_status(snn_model_forward_cl(m, NULL, 0, B, NULL, out, 0, NULL, 0, 0, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_model_forward_cl(m, in, 0, B, NULL, NULL, 0, NULL, 0, 0, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_model_forward_cl(m, in, 0, 0, NULL, out, 0, NULL, 0, 0, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_model_forward_cl(NULL, in, 0, B, NULL, out, 0, NULL, 0, 0, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_model_forward_cl(m, in, 0, B, NULL, out, 0, NULL, 0, 1, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(snn_last_error(), "wait_list"));
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.lyapunov = 1;
    ck_assert_snn_status(snn_model_forward_cl(m, in, 0, B, &fp, out, 0, in, B * IN, 0, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(snn_last_error(), "lyap_per_sample"));
    /* and it still works */
    ck_assert_snn_ok(snn_model_forward_cl(m, in, 0, B, NULL, out, 0, NULL, 0, 0, NULL, NULL));
    ck_assert_snn_ok(snn_context_finish(ctx));
    clReleaseMemObject(in);
    clReleaseMemObject(out);
    clReleaseMemObject(foreign);
    snn_model_free(m);
    snn_context_free(ctx);
    own_cl_close(&other);
    own_cl_close(&o);
}
END_TEST

/* Every trainable tensor of two trainers holds the same bits. */
static void assert_same_params(snn_trainer *a, snn_trainer *b, cl_command_queue q, const char *when) {
    ck_assert_int_eq(snn_trainer_num_grads(a), snn_trainer_num_grads(b));
    for (int i = 0; i < snn_trainer_num_grads(a); i++) {
        size_t count = 0;
        const char *name = NULL;
        ck_assert_snn_ok(snn_trainer_grad_info(a, i, &name, NULL, NULL, &count));
        cl_mem pa, pb;
        ck_assert_snn_ok(snn_trainer_param_cl(a, i, &pa, NULL));
        ck_assert_snn_ok(snn_trainer_param_cl(b, i, &pb, NULL));
        float *ha = malloc(count * sizeof(float)), *hb = malloc(count * sizeof(float));
        ck_assert(ha && hb);
        read_floats(q, pa, 0, count, ha);
        read_floats(q, pb, 0, count, hb);
        ck_assert_msg(memcmp(ha, hb, count * sizeof(float)) == 0, "%s: %s differs", name, when);
        free(ha);
        free(hb);
    }
}

enum { STEPS = 3 };

/* Training on device buffers (asynchronous steps, one wait) gives the model that
 * host-array steps give, bit for bit, on sparse and dense-only contexts; a step split
 * into gradients and snn_trainer_apply too. On a dense-only context, the enqueued
 * steps neither wait for the device nor copy through the host. */
START_TEST(test_training_on_device_buffers) {
    own_cl o;
    own_cl_open(&o);
    float x[STEPS * B * IN];
    int64_t labels64[STEPS * B];
    cl_int labels32[STEPS * B];
    test_rng r;
    test_rng_seed(&r, 21);
    test_fill_uniform(&r, x, SNN_ARRAY_LEN(x), 0.0f, 1.0f);
    for (int i = 0; i < STEPS * B; i++) labels32[i] = (cl_int)(labels64[i] = (int64_t)(test_rng_u32(&r) % K));
    for (int dense = 0; dense < 2; dense++) {
        snn_context_params cp;
        snn_context_params_default(&cp);
        cp.dense_only = dense;
        snn_context *ctx = NULL;
        ck_assert_snn_ok(snn_context_create_cl(&ctx, o.context, o.device, o.queue, &cp));
        snn_model *mh = small_model(ctx), *md = small_model(ctx);
        snn_train_config tc;
        snn_train_config_default(&tc);
        tc.schedule = SNN_SCHEDULE_CONSTANT;
        tc.grad_clip = 1.0f;
        snn_trainer *th = NULL, *td = NULL;
        ck_assert_snn_ok(snn_trainer_create(&th, mh, &tc));
        ck_assert_snn_ok(snn_trainer_create(&td, md, &tc));
        cl_mem xin = make_buffer(o.context, SNN_ARRAY_LEN(x), x);
        cl_int err;
        cl_mem lab = clCreateBuffer(o.context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof labels32, labels32, &err);
        ck_assert_int_eq(err, CL_SUCCESS);

        snn_step_stats want, got;
        for (int k = 0; k < STEPS; k++) {
            const snn_batch hb = {.input = x + k * B * IN, .labels = labels64 + k * B, .size = B, .seed = 100 + k};
            ck_assert_snn_ok(snn_trainer_step(th, &hb, &want));
        }
        const unsigned long reads = ctx->host_reads, writes = ctx->host_writes, waits = ctx->host_waits;
        cl_event last = NULL;
        for (int k = 0; k < STEPS - 1; k++) {
            const snn_batch_cl db = {.input = xin, .input_offset = (size_t)k * B * IN, .labels = lab,
                                     .labels_offset = (size_t)k * B, .size = B, .seed = 100 + (uint64_t)k};
            cl_event prev = last; /* each step after the one before, as a pipeline would chain them */
            ck_assert_snn_ok(snn_trainer_step_cl(td, &db, prev ? 1 : 0, prev ? &prev : NULL, &last));
            if (prev) clReleaseEvent(prev);
        }
        if (dense) {
            ck_assert_uint_eq(ctx->host_reads, reads);
            ck_assert_uint_eq(ctx->host_writes, writes);
            ck_assert_uint_eq(ctx->host_waits, waits);
        }
        /* the last step in two halves: gradients, then the update */
        const snn_batch_cl db = {.input = xin, .input_offset = (size_t)(STEPS - 1) * B * IN, .labels = lab,
                                 .labels_offset = (size_t)(STEPS - 1) * B, .size = B, .seed = 100 + STEPS - 1};
        ck_assert_snn_ok(snn_trainer_gradients_cl(td, &db, 1, &last, NULL));
        clReleaseEvent(last);
        ck_assert_snn_ok(snn_trainer_wait(td, &got));
        ck_assert_snn_ok(snn_trainer_apply(td));
        ck_assert_msg(memcmp(&got.loss, &want.loss, sizeof got.loss) == 0 &&
                          memcmp(&got.lyapunov, &want.lyapunov, sizeof got.lyapunov) == 0 &&
                          memcmp(&got.grad_norm, &want.grad_norm, sizeof got.grad_norm) == 0 &&
                          got.correct == want.correct,
                      "last step's figures differ (dense_only %d): loss %.9g vs %.9g, lyapunov %.9g vs %.9g", dense,
                      (double)got.loss, (double)want.loss, (double)got.lyapunov, (double)want.lyapunov);
        ck_assert_float_eq(got.lr, 0.0f); /* gradients only */
        ck_assert_int_eq(snn_trainer_steps_done(td), STEPS);
        assert_same_params(th, td, o.queue, dense ? "dense-only context" : "sparse context");

        /* A label out of range: the step runs without its sample, the wait says so. */
        const cl_int bad[B] = {1, K, 2};
        cl_mem badlab = clCreateBuffer(o.context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof bad, (void *)bad,
                                       &err);
        ck_assert_int_eq(err, CL_SUCCESS);
        const snn_batch_cl badb = {.input = xin, .labels = badlab, .size = B};
        ck_assert_snn_ok(snn_trainer_step_cl(td, &badb, 0, NULL, NULL));
        ck_assert_snn_status(snn_trainer_wait(td, &got), SNN_ERR_INVALID_ARG);
        ck_assert_ptr_nonnull(strstr(snn_last_error(), "outside [0, 10)"));
        ck_assert_snn_status(snn_trainer_wait(td, &got), SNN_ERR_INVALID_ARG); /* nothing pending now */
        ck_assert_ptr_nonnull(strstr(snn_last_error(), "no step"));
        ck_assert_snn_ok(snn_trainer_step_cl(td, &db, 0, NULL, NULL)); /* the flag was reset */
        ck_assert_snn_ok(snn_trainer_wait(td, NULL));

        clReleaseMemObject(badlab);
        clReleaseMemObject(xin);
        clReleaseMemObject(lab);
        snn_trainer_free(th);
        snn_trainer_free(td);
        snn_model_free(mh);
        snn_model_free(md);
        snn_context_free(ctx);
    }
    own_cl_close(&o);
}
END_TEST

/* snn_batch_cl's size is fixed from its first release (LP64); fields to come take
 * their bytes from `reserved`. */
START_TEST(test_batch_cl_size) {
    if (sizeof(void *) == 8) ck_assert_uint_eq(sizeof(snn_batch_cl), 88);
}
END_TEST

/* Device batches that cannot serve are refused with the reason. */
START_TEST(test_training_cl_refusals) {
    own_cl o, other;
    own_cl_open(&o);
    own_cl_open(&other);
    snn_context *ctx = NULL;
    ck_assert_snn_ok(snn_context_create_cl(&ctx, o.context, o.device, o.queue, NULL));
    snn_model *m = small_model(ctx);
    snn_trainer *tr = NULL;
    ck_assert_snn_ok(snn_trainer_create(&tr, m, NULL));
    cl_mem in = make_buffer(o.context, B * IN, NULL), lab = make_buffer(o.context, B, NULL);
    cl_mem foreign = make_buffer(other.context, B * IN, NULL);
    snn_batch_cl b;
    snn_batch_cl_init(&b);
    snn_batch_cl_init(NULL);
    b.input = in;
    b.labels = lab;
    b.size = B;
    cl_event ev = (cl_event)&o; /* must become NULL on failure */
    b.input_offset = 1;
    ck_assert_snn_status(snn_trainer_step_cl(tr, &b, 0, NULL, &ev), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(ev);
    ck_assert_ptr_nonnull(strstr(snn_last_error(), "batch->input holds"));
    b.input_offset = 0;
    b.labels_offset = 1;
    ck_assert_snn_status(snn_trainer_gradients_cl(tr, &b, 0, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(snn_last_error(), "batch->labels holds"));
    b.labels_offset = 0;
    b.input = foreign;
    ck_assert_snn_status(snn_trainer_step_cl(tr, &b, 0, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(snn_last_error(), "another OpenCL context"));
    b.input = in;
    b.size = 0;
    ck_assert_snn_status(snn_trainer_step_cl(tr, &b, 0, NULL, NULL), SNN_ERR_INVALID_ARG);
    b.size = B;
    ck_assert_snn_status(snn_trainer_step_cl(tr, &b, 2, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_trainer_step_cl(tr, NULL, 0, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_trainer_step_cl(NULL, &b, 0, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_trainer_wait(tr, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_trainer_wait(NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_trainer_apply(NULL), SNN_ERR_INVALID_ARG);
    cl_mem p = NULL;
    ck_assert_snn_status(snn_trainer_param_cl(tr, snn_trainer_num_grads(tr), &p, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_trainer_param_cl(tr, -1, NULL, &p), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_trainer_param_cl(NULL, 0, &p, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_ok(snn_trainer_param_cl(tr, 0, NULL, &p));
    ck_assert_ptr_nonnull(p);
    clReleaseMemObject(in);
    clReleaseMemObject(lab);
    clReleaseMemObject(foreign);
    snn_trainer_free(tr);
    snn_model_free(m);
    snn_context_free(ctx);
    own_cl_close(&other);
    own_cl_close(&o);
}
END_TEST

/* Sessions: the model's results bit for bit, host and device forms; the memory a
 * pass holds within snn_model_workspace_bytes and given back on request; bad
 * arguments refused. */
START_TEST(test_sessions) {
    snn_context *ctx = NULL;
    ck_assert_snn_ok(snn_context_create(&ctx, NULL));
    snn_model *m = small_model(ctx);
    ck_assert_ptr_eq(snn_model_context(m), ctx);
    ck_assert_ptr_null(snn_model_context(NULL));
    float x[B * IN];
    test_rng r;
    test_rng_seed(&r, 31);
    test_fill_uniform(&r, x, B * IN, 0.0f, 1.0f);
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.lyapunov = 1;
    float want[B * K], want_lyap[B], got[B * K], got_lyap[B], mean;
    ck_assert_snn_ok(snn_model_forward(m, x, B, &fp, want, NULL, want_lyap));
    ck_assert_snn_ok(snn_model_release_buffers(m));

    size_t before, after, peak, bound;
    ck_assert_snn_ok(snn_model_workspace_bytes(m, B, &fp, &bound));
    ck_assert_snn_ok(snn_context_memory(ctx, &before, &peak));
    snn_session *s = NULL;
    ck_assert_snn_ok(snn_session_create(&s, m));
    ck_assert_snn_ok(snn_session_forward(s, x, B, &fp, got, &mean, got_lyap));
    ck_assert_msg(memcmp(got, want, sizeof got) == 0 && memcmp(got_lyap, want_lyap, sizeof got_lyap) == 0,
                  "a session's results differ from the model's");
    ck_assert_snn_ok(snn_context_memory(ctx, &after, &peak));
    ck_assert_msg(after > before && after - before <= bound, "a pass holds %zu bytes; snn_model_workspace_bytes says %zu",
                  after - before, bound);
    ck_assert_snn_ok(snn_session_release_buffers(s));
    ck_assert_snn_ok(snn_context_memory(ctx, &after, &peak));
    ck_assert_uint_eq(after, before);

    cl_context c;
    ck_assert_snn_ok(snn_context_get_cl(ctx, &c, NULL, NULL));
    cl_mem in = make_buffer(c, B * IN, x), out = make_buffer(c, B * K, NULL);
    cl_event done = NULL;
    ck_assert_snn_ok(snn_session_forward_cl(s, in, 0, B, &fp, out, 0, NULL, 0, 0, NULL, &done));
    ck_assert_int_eq(clWaitForEvents(1, &done), CL_SUCCESS);
    clReleaseEvent(done);
    cl_command_queue q;
    ck_assert_snn_ok(snn_context_get_cl(ctx, NULL, NULL, &q));
    read_floats(q, out, 0, B * K, got);
    ck_assert_msg(memcmp(got, want, sizeof got) == 0, "a session's device-buffer results differ from the model's");

    /* refusals */
    snn_session *none = (snn_session *)&r; /* must become NULL */
    ck_assert_snn_status(snn_session_create(&none, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(none);
    ck_assert_snn_status(snn_session_create(NULL, m), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_session_forward(NULL, x, B, &fp, got, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_session_forward(s, NULL, B, &fp, got, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_session_forward(s, x, 0, &fp, got, NULL, NULL), SNN_ERR_INVALID_ARG);
    done = (cl_event)&r;
    ck_assert_snn_status(snn_session_forward_cl(NULL, in, 0, B, &fp, out, 0, NULL, 0, 0, NULL, &done),
                         SNN_ERR_INVALID_ARG);
    ck_assert_ptr_null(done);
    ck_assert_snn_status(snn_session_forward_cl(s, in, 1, B, &fp, out, 0, NULL, 0, 0, NULL, NULL),
                         SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_session_release_buffers(NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_model_release_buffers(NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_model_workspace_bytes(m, B, NULL, NULL), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_model_workspace_bytes(m, 0, NULL, &bound), SNN_ERR_INVALID_ARG);
    ck_assert_snn_status(snn_model_workspace_bytes(NULL, B, NULL, &bound), SNN_ERR_INVALID_ARG);
    snn_session_free(NULL);

    clReleaseMemObject(in);
    clReleaseMemObject(out);
    snn_session_free(s);
    snn_model_free(m);
    snn_context_free(ctx);
}
END_TEST

/* snn_context_params.memory_budget: a pass holds no more than the budget (its chunks
 * of time steps shrink to fit, the results stay), and a batch that cannot fit one
 * step is refused with the reason. */
START_TEST(test_memory_budget) {
    snn_model *m = small_model(test_context());
    float x[B * IN];
    test_rng r;
    test_rng_seed(&r, 41);
    test_fill_uniform(&r, x, B * IN, 0.0f, 1.0f);
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.lyapunov = 1;
    float want[B * K], want_lyap[B], got[B * K], got_lyap[B];
    ck_assert_snn_ok(snn_model_forward(m, x, B, &fp, want, NULL, want_lyap));
    size_t unbounded;
    ck_assert_snn_ok(snn_model_workspace_bytes(m, B, &fp, &unbounded));
    snn_model_free(m);

    snn_context_params cp;
    snn_context_params_default(&cp);
    cp.memory_budget = unbounded / 2;
    snn_context *ctx = NULL;
    ck_assert_snn_ok(snn_context_create(&ctx, &cp));
    m = small_model(ctx);
    size_t bounded, before, after, peak;
    ck_assert_snn_ok(snn_model_workspace_bytes(m, B, &fp, &bounded));
    ck_assert_msg(bounded <= cp.memory_budget, "workspace %zu bytes for a budget of %zu", bounded, cp.memory_budget);
    ck_assert_snn_ok(snn_context_memory(ctx, &before, &peak));
    ck_assert_snn_ok(snn_context_reset_peak(ctx));
    ck_assert_snn_ok(snn_model_forward(m, x, B, &fp, got, NULL, got_lyap));
    ck_assert_snn_ok(snn_context_memory(ctx, &after, &peak));
    ck_assert_msg(peak - before <= cp.memory_budget, "the pass held %zu bytes; budget %zu", peak - before,
                  cp.memory_budget);
    /* shorter chunks change no sum: the same bits */
    ck_assert_msg(memcmp(got, want, sizeof got) == 0 && memcmp(got_lyap, want_lyap, sizeof got_lyap) == 0,
                  "results differ under a memory budget");
    snn_model_free(m);
    snn_context_free(ctx);

    cp.memory_budget = 4096; /* not one step */
    ck_assert_snn_ok(snn_context_create(&ctx, &cp));
    m = small_model(ctx);
    ck_assert_snn_status(snn_model_forward(m, x, B, &fp, got, NULL, got_lyap), SNN_ERR_OUT_OF_MEMORY);
    ck_assert_ptr_nonnull(strstr(snn_last_error(), "memory budget is 4096 bytes"));
    snn_model_free(m);
    snn_context_free(ctx);
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
    tcase_add_test(tc, test_forward_on_device_buffers);
    tcase_add_test(tc, test_forward_cl_refusals);
    tcase_add_test(tc, test_training_on_device_buffers);
    tcase_add_test(tc, test_training_cl_refusals);
    tcase_add_test(tc, test_batch_cl_size);
    tcase_add_test(tc, test_sessions);
    tcase_add_test(tc, test_memory_budget);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
