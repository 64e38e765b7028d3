/* Device faults: every device allocation, enqueue and read of a representative sequence
 * (create, forward with and without the estimate, spike record, a training step with the
 * regularizer, gradients, optimizer state, save and load) is made to fail in turn. Each
 * failure must come back as the right status with a message naming the OpenCL error,
 * leave no device memory behind, and leave the context usable: a clean run afterwards
 * gives the same outputs, bit for bit, as a fresh context. Also the environment variable
 * SNNCL_FAULT, and kernel build failures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "context.h"
#include "fault.h"
#include "gemm.h"
#include "testutil.h"

/* A tiny model: simple [2, 3] on 1x4x4, 3 classes, T = 2, direct encoding; batch 2. */
enum { B = 2, K = 3, IN = 1 * 4 * 4, L0 = 2 * 4 * 4, L1 = 3 * 2 * 2, T = 2 };

static snn_model_config tiny_config(void) {
    snn_model_config cfg;
    ck_assert_snn_ok(snn_model_config_default(&cfg, "simple"));
    cfg.in_channels = 1;
    cfg.height = 4;
    cfg.width = 4;
    cfg.num_classes = K;
    cfg.num_blocks = 2;
    cfg.channels[0] = 2;
    cfg.channels[1] = 3;
    cfg.channels[2] = 0;
    cfg.T = T;
    cfg.threshold = 0.5f;
    cfg.dropout = 0.0f;
    cfg.encoding = SNN_ENCODING_DIRECT;
    return cfg;
}

/* Everything the sequence computes, compared bit for bit between runs. */
typedef struct outputs {
    float logits[B * K], logits_lyap[B * K], lyap, per_sample[B], logits_loaded[B * K];
    uint8_t spikes0[T * L0], spikes1[T * L1];
    snn_step_stats step, grads;
    float grad0[2 * 1 * 3 * 3];
    int64_t steps;
} outputs;

/* The call that failed, for messages. */
static const char *failed_call;

#define STEP(expr)                          \
    do {                                    \
        st = (expr);                        \
        if (st != SNN_OK) {                 \
            failed_call = #expr;            \
            goto done;                      \
        }                                   \
    } while (0)

static snn_status run_sequence(snn_context *ctx, outputs *o) {
    snn_model_config cfg = tiny_config();
    snn_model *m = NULL, *loaded = NULL;
    snn_trainer *tr = NULL;
    snn_safetensors *state = NULL;
    snn_status st = SNN_OK;
    float x[B * IN];
    int64_t labels[B] = {2, 0};
    uint8_t *spikes[2] = {o->spikes0, o->spikes1};
    snn_forward_params fp;
    snn_train_config tc;
    snn_batch batch;
    const char *path = tmp_path("faults.safetensors");

    memset(o, 0, sizeof *o);
    failed_call = NULL;
    for (int i = 0; i < B * IN; i++) x[i] = (float)((i * 37) % 17) / 8.0f;
    snn_forward_params_default(&fp);
    fp.seed = 5;
    snn_train_config_default(&tc);
    tc.schedule = SNN_SCHEDULE_CONSTANT;
    tc.lyap_weight = 0.1f;
    memset(&batch, 0, sizeof batch);
    batch.input = x;
    batch.labels = labels;
    batch.size = B;
    batch.seed = 9;

    STEP(snn_model_create(&m, ctx, &cfg, 11));
    STEP(snn_model_forward(m, x, B, &fp, o->logits, NULL, NULL));
    fp.lyapunov = 1;
    STEP(snn_model_forward(m, x, B, &fp, o->logits_lyap, &o->lyap, o->per_sample));
    STEP(snn_model_record_spikes(m, x, B, 1, &fp, spikes, NULL));
    STEP(snn_trainer_create(&tr, m, &tc));
    STEP(snn_trainer_step(tr, &batch, &o->step));
    STEP(snn_trainer_gradients(tr, &batch, &o->grads));
    STEP(snn_trainer_read_grad(tr, 0, o->grad0));
    STEP(snn_safetensors_create(&state));
    STEP(snn_trainer_save_state(tr, state));
    STEP(snn_trainer_load_state(tr, state));
    o->steps = snn_trainer_steps_done(tr);
    STEP(snn_model_save(m, path));
    STEP(snn_model_load(&loaded, ctx, path));
    STEP(snn_model_forward(loaded, x, B, NULL, o->logits_loaded, NULL, NULL));
    STEP(snn_context_finish(ctx));
done:
    snn_safetensors_free(state);
    snn_trainer_free(tr);
    snn_model_free(loaded);
    snn_model_free(m);
    return st;
}

/* Device memory in use once it has settled at or below `expected`, or after two seconds.
 * The runtime may release a buffer a little after clFinish returns (PoCL drops the last
 * reference of a finished command on its own thread), so a lower figure can lag; a leak
 * never settles. */
static size_t memory_in_use(snn_context *ctx, size_t expected) {
    size_t in_use = 0;
    ck_assert_snn_ok(snn_context_finish(ctx));
    for (int tries = 0; tries < 2000; tries++) {
        ck_assert_snn_ok(snn_context_memory(ctx, &in_use, NULL));
        if (in_use <= expected) break;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return in_use;
}

static void assert_same_outputs(const outputs *a, const outputs *b, const char *what) {
    ck_assert_msg(memcmp(a, b, sizeof *a) == 0, "%s: the outputs differ from a fresh context's", what);
}

/* The reference outputs of each GEMM implementation (they round differently), from a
 * context made for them alone. */
static outputs reference[3];
static int have_reference[3];

static const outputs *fresh_context_outputs(snn_gemm_impl impl) {
    if (!have_reference[impl]) {
        snn_context *ctx = NULL;
        ck_assert_snn_ok(snn_context_create(&ctx, NULL));
        ck_assert_snn_ok(snn_gemm_set_impl(ctx, impl));
        ck_assert_snn_ok(run_sequence(ctx, &reference[impl]));
        ck_assert_int_eq(reference[impl].steps, 1);
        snn_context_free(ctx);
        have_reference[impl] = 1;
    }
    return &reference[impl];
}

static const char *const kind_names[] = {"none", "alloc", "launch", "read"};

/* Fails event N of `kind` for N = 0, 1, ... until the sequence completes without reaching
 * it; returns how many faults were injected. */
static int walk_faults(snn_context *ctx, snn_fault_kind kind, cl_int code, snn_status want, snn_status also,
                       const char *code_name) {
    const outputs *ref = fresh_context_outputs(snn_gemm_get_impl(ctx));
    outputs o;
    /* A clean run first, so that the context's own lazily grown buffers (GEMM scratch)
     * are in the baseline. */
    snn_fault_disarm();
    ck_assert_snn_ok(run_sequence(ctx, &o));
    assert_same_outputs(&o, ref, "before any fault");
    const long events = snn_fault_events(kind);
    const size_t baseline = memory_in_use(ctx, 0);
    ck_assert_msg(events > 0, "the sequence has no %s events", kind_names[kind]);
    int injected = 0;
    for (long n = 0;; n++) {
        snn_fault_arm(kind, n, code);
        snn_status st = run_sequence(ctx, &o);
        const int fired = snn_fault_fired();
        snn_fault_disarm();
        if (!fired) {
            ck_assert_msg(st == SNN_OK, "%s fault %ld not injected, yet %s returned %s: %s", kind_names[kind], n,
                          failed_call, snn_status_name(st), snn_last_error());
            ck_assert_int_eq(n, events);
            break;
        }
        injected++;
        ck_assert_msg(st == want || st == also, "%s fault %ld: %s returned %s, wanted %s (%s)", kind_names[kind], n,
                      st == SNN_OK ? "the sequence" : failed_call, snn_status_name(st), snn_status_name(want),
                      snn_last_error());
        ck_assert_msg(strstr(snn_last_error(), code_name) != NULL,
                      "%s fault %ld: %s: the message does not name %s: \"%s\"", kind_names[kind], n, failed_call,
                      code_name, snn_last_error());
        const size_t after = memory_in_use(ctx, baseline);
        ck_assert_msg(after <= baseline, "%s fault %ld in %s: %zu bytes of device memory left behind",
                      kind_names[kind], n, failed_call, after - baseline);
        /* The context still works, and gives what a fresh one gives. */
        ck_assert_msg(run_sequence(ctx, &o) == SNN_OK, "%s fault %ld: the clean run after it failed in %s: %s",
                      kind_names[kind], n, failed_call, snn_last_error());
        assert_same_outputs(&o, ref, failed_call);
        ck_assert_uint_eq(memory_in_use(ctx, baseline), baseline);
    }
    fprintf(stderr, "%s faults (%s): %d injection points, each failed cleanly\n", kind_names[kind], code_name,
            injected);
    return injected;
}

START_TEST(test_alloc_faults) {
    walk_faults(test_context(), SNN_FAULT_ALLOC, 0, SNN_ERR_OUT_OF_MEMORY, SNN_ERR_OUT_OF_MEMORY,
                "CL_MEM_OBJECT_ALLOCATION_FAILURE");
}
END_TEST

START_TEST(test_launch_faults) {
    walk_faults(test_context(), SNN_FAULT_LAUNCH, 0, SNN_ERR_OPENCL, SNN_ERR_OPENCL, "CL_DEVICE_NOT_AVAILABLE");
}
END_TEST

/* A lost device as NVIDIA's runtime reports it: out of resources, an SNN_ERR_OUT_OF_MEMORY. */
START_TEST(test_launch_faults_out_of_resources) {
    walk_faults(test_context(), SNN_FAULT_LAUNCH, CL_OUT_OF_RESOURCES, SNN_ERR_OUT_OF_MEMORY, SNN_ERR_OUT_OF_MEMORY,
                "CL_OUT_OF_RESOURCES");
}
END_TEST

START_TEST(test_read_faults) {
    walk_faults(test_context(), SNN_FAULT_READ, 0, SNN_ERR_OPENCL, SNN_ERR_OPENCL, "CL_DEVICE_NOT_AVAILABLE");
}
END_TEST

/* The same through CLBlast's GEMMs (the default on GPUs): a failed CLBlastSgemm is an
 * SNN_ERR_GEMM, any other launch an SNN_ERR_OPENCL. */
START_TEST(test_launch_faults_clblast) {
    snn_context *ctx = NULL;
    ck_assert_snn_ok(snn_context_create(&ctx, NULL));
    ck_assert_snn_ok(snn_gemm_set_impl(ctx, SNN_GEMM_CLBLAST));
    walk_faults(ctx, SNN_FAULT_LAUNCH, 0, SNN_ERR_OPENCL, SNN_ERR_GEMM, "CL_DEVICE_NOT_AVAILABLE");
    snn_context_free(ctx);
}
END_TEST

/* SNNCL_FAULT arms a fault when a context is made (for the command line's tests). */
START_TEST(test_fault_from_environment) {
    snn_context *ctx = NULL;
    snn_model *m = NULL;
    snn_model_config cfg = tiny_config();
    const char *const bad[] = {"alloc", "alloc:", "alloc:x", "alloc:-1", "disk:1", "launch:1:bogus", "read:2:"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(setenv("SNNCL_FAULT", bad[i], 1), 0);
        ck_assert_snn_status(snn_context_create(&ctx, NULL), SNN_ERR_INVALID_ARG);
        ck_assert_ptr_null(ctx);
        ck_assert_msg(strstr(snn_last_error(), "SNNCL_FAULT") && strstr(snn_last_error(), bad[i]),
                      "SNNCL_FAULT=%s: message \"%s\"", bad[i], snn_last_error());
    }
    ck_assert_int_eq(setenv("SNNCL_FAULT", "alloc:0", 1), 0);
    ck_assert_snn_ok(snn_context_create(&ctx, NULL));
    ck_assert_int_eq(unsetenv("SNNCL_FAULT"), 0);
    ck_assert_snn_status(snn_model_create(&m, ctx, &cfg, 1), SNN_ERR_OUT_OF_MEMORY);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(snn_fault_fired(), 1);
    ck_assert_uint_eq(memory_in_use(ctx, 0), 0);
    snn_fault_disarm();

    ck_assert_int_eq(setenv("SNNCL_FAULT", "read:0:CL_OUT_OF_RESOURCES", 1), 0);
    snn_context_free(ctx);
    ck_assert_snn_ok(snn_context_create(&ctx, NULL));
    ck_assert_int_eq(unsetenv("SNNCL_FAULT"), 0);
    ck_assert_snn_status(snn_context_finish(ctx), SNN_ERR_OUT_OF_MEMORY);
    ck_assert_msg(strstr(snn_last_error(), "CL_OUT_OF_RESOURCES"), "message \"%s\"", snn_last_error());
    ck_assert_snn_ok(snn_context_finish(ctx));
    snn_fault_disarm();
    snn_context_free(ctx);
}
END_TEST

/* Kernels that do not build: SNN_ERR_BUILD with the build log, no context, and the
 * process can go on making working contexts. */
START_TEST(test_build_failure) {
    snn_context_params cp;
    snn_context *ctx = (snn_context *)&cp;
    snn_context_params_default(&cp);
    /* Every kernel calls get_global_id: made a syntax error, nothing builds. */
    cp.build_options = "-Dget_global_id=snncl_fault_test_broken(";
    snn_set_log_callback(NULL, NULL, (snn_log_level)-1); /* the expected failure stays quiet */
    for (int i = 0; i < 2; i++) {
        ctx = (snn_context *)&cp;
        ck_assert_snn_status(snn_context_create(&ctx, &cp), SNN_ERR_BUILD);
        ck_assert_ptr_null(ctx);
        ck_assert_msg(strstr(snn_last_error(), "snn_context_create") &&
                          strstr(snn_last_error(), "error:") != NULL,
                      "no function name or build log in: %s", snn_last_error());
    }
    /* Options the compiler rejects outright fail the same way. */
    cp.build_options = "-cl-no-such-option-snncl";
    ck_assert_snn_status(snn_context_create(&ctx, &cp), SNN_ERR_BUILD);
    ck_assert_ptr_null(ctx);
    snn_set_log_callback(NULL, NULL, SNN_LOG_WARN);
    outputs o;
    ck_assert_snn_ok(snn_context_create(&ctx, NULL));
    ck_assert_snn_ok(run_sequence(ctx, &o));
    assert_same_outputs(&o, fresh_context_outputs(snn_gemm_get_impl(ctx)), "after failed builds");
    snn_context_free(ctx);
}
END_TEST

static Suite *faults_suite(void) {
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("device");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_alloc_faults);
    tcase_add_test(tc, test_launch_faults);
    tcase_add_test(tc, test_launch_faults_out_of_resources);
    tcase_add_test(tc, test_read_faults);
    tcase_add_test(tc, test_launch_faults_clblast);
    tcase_add_test(tc, test_fault_from_environment);
    tcase_add_test(tc, test_build_failure);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    /* A leftover SNNCL_FAULT would arm faults this test does not expect. */
    unsetenv("SNNCL_FAULT");
    return run_suite(faults_suite());
}
