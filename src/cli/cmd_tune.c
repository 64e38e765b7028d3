/* snncl tune: measures which GEMM implementation (and which CLBlast parameters) is
 * fastest on a device and stores the choice, which every later context on that device
 * uses (src/core/tune.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "gemm.h"
#include "model.h"
#include "snncl.h"
#include "tune.h"

static void print_line(void *user, const char *line) {
    printf("  %s%s\n", (const char *)user, line);
    fflush(stdout);
}

static void show(const snn_device_info *info) {
    char path[1200];
    snn_tuning t;
    int found = 0;
    if (snn_tune_path(info, path, sizeof path) != SNN_OK) {
        printf("  no tuning file location: %s\n", snn_last_error());
        return;
    }
    if (snn_tune_load(info, &t, &found) != SNN_OK) {
        printf("  %s: unusable (%s); the device-type default applies\n", path, snn_last_error());
        return;
    }
    if (!found) {
        printf("  not tuned (%s does not exist); the device-type default applies\n", path);
        return;
    }
    printf("  %s\n  gemm: %s; native %.1f ms, CLBlast %.1f ms (its own parameters), %.1f ms (best of %d sets)\n",
           path, snn_gemm_impl_name(t.impl), t.native_s * 1e3, t.clblast_default_s * 1e3, t.clblast_tuned_s * 1e3,
           t.candidates_tried - t.candidates_failed);
    if (t.has_xgemm) {
        printf("  CLBlast Xgemm:");
        for (int i = 0; i < SNN_XGEMM_PARAMS; i++) printf(" %s=%zu", snn_xgemm_param_names[i], t.xgemm[i]);
        printf("\n");
    }
}

/* Tunes one device; returns an exit status. */
static int tune_device(const char *device, const snn_tune_options *o, int dry_run, int show_only, int reset) {
    snn_context_params cp;
    snn_context_params_default(&cp);
    cp.device = device;
    snn_context *ctx = NULL;
    snn_status st = snn_context_create(&ctx, &cp);
    if (st != SNN_OK) return cli_report("opening the device", st);
    snn_device_info info;
    snn_context_device_info(ctx, &info);
    printf("%s (%s, driver %s)\n", info.name, info.platform, info.driver_version);
    int status = 0;
    if (show_only) {
        show(&info);
    } else if (reset) {
        char path[1200];
        if (snn_tune_path(&info, path, sizeof path) != SNN_OK) {
            status = cli_report("tuning file", SNN_ERR_IO);
        } else if (unlink(path) != 0 && errno != ENOENT) {
            fprintf(stderr, "snncl tune: cannot remove %s: %s\n", path, strerror(errno));
            status = 1;
        } else {
            printf("  removed %s; the device-type default (%s) applies\n", path,
                   snn_gemm_impl_name(snn_gemm_default_impl(ctx)));
        }
    } else {
        snn_tuning t;
        st = snn_tune_run(ctx, o, &t);
        if (st != SNN_OK) {
            status = cli_report("tuning", st);
        } else {
            printf("  chosen: %s%s\n", snn_gemm_impl_name(t.impl),
                   t.impl == SNN_GEMM_CLBLAST ? (t.has_xgemm ? " with the best parameter set above"
                                                             : " with its own parameters")
                                              : "");
            char path[1200];
            if (dry_run) {
                printf("  not stored (--dry-run)\n");
            } else if ((st = snn_tune_save(&info, &t, path, sizeof path)) != SNN_OK) {
                status = cli_report("storing the tuning", st);
            } else {
                printf("  stored in %s\n", path);
            }
        }
    }
    snn_context_free(ctx);
    return status;
}

int cmd_tune(int argc, char **argv) {
    const char *device = NULL;
    int all_devices = 0, candidates = 8, runs = 3, cols = 8192, dry_run = 0, show_only = 0, reset = 0;
    cli_option opts[] = {
        {"device", CLI_STRING, &device, "D", "device index or name substring (default: $SNNCL_DEVICE, else 0)", 0, 0},
        {"all-devices", CLI_FLAG, &all_devices, NULL, "tune every device in turn", 0, 0},
        {"candidates", CLI_INT, &candidates, "N", "CLBlast Xgemm parameter sets to try besides its own (default 8)", 0, 0},
        {"runs", CLI_INT, &runs, "N", "timed runs per product, median taken (default 3)", 0, 0},
        {"cols", CLI_INT, &cols, "N", "columns of the largest products (default 8192)", 0, 0},
        {"dry-run", CLI_FLAG, &dry_run, NULL, "measure and print, store nothing", 0, 0},
        {"show", CLI_FLAG, &show_only, NULL, "print the stored tuning and exit", 0, 0},
        {"reset", CLI_FLAG, &reset, NULL, "delete the stored tuning (back to the device-type default)", 0, 0},
    };
    const size_t nopts = sizeof opts / sizeof opts[0];
    char err[256];
    int rc = cli_parse(argc, argv, 2, opts, nopts, err, sizeof err);
    if (rc == CLI_HELP) {
        cli_usage(stdout, "snncl tune [options]",
                  "Times the hand-written GEMM kernels (cl/gemm.cl) and CLBlast, with its own\n"
                  "parameters and with --candidates other Xgemm parameter sets, on the matrix\n"
                  "products of the default workload, and stores the fastest choice for the device.\n"
                  "Every later context on that device, driver and snncl version uses it; without\n"
                  "one, CPUs use the native kernels and other devices CLBlast. The file lives in\n"
                  "$SNNCL_CACHE_DIR, else $XDG_CACHE_HOME/snncl, else ~/.cache/snncl.\n"
                  "SNNCL_TUNING=0 ignores it; SNNCL_GEMM=native|clblast overrides both.",
                  opts, nopts);
        return 0;
    }
    if (rc == CLI_ERROR) {
        fprintf(stderr, "snncl tune: %s\n", err);
        return 2;
    }
    if (candidates < 0 || candidates > 256 || runs < 1 || runs > 16 || cols < 64 || show_only + reset + dry_run > 1 ||
        (all_devices && device)) {
        fprintf(stderr, "snncl tune: --candidates 0-256, --runs 1-16, --cols >= 64; at most one of --show, --reset, "
                        "--dry-run; --device or --all-devices\n");
        return 2;
    }
    /* The products of the default workload (snncl bench's first: simple, 32x32x3, B = 32). */
    snn_model_config workload;
    snn_gemm_shape shapes[SNN_GEMM_MAX_SHAPES];
    size_t count = 0;
    snn_status st = snn_model_config_default(&workload, "simple");
    if (st == SNN_OK) st = snn_config_gemm_shapes(&workload, 32, (size_t)cols, shapes, SNN_GEMM_MAX_SHAPES, &count);
    if (st != SNN_OK) return cli_report("the workload's products", st);
    snn_tune_options o = {candidates, runs, shapes, count, print_line, ""};
    if (!all_devices) return tune_device(device, &o, dry_run, show_only, reset);
    int n = 0;
    st = snn_device_count(&n);
    if (st != SNN_OK) return cli_report("listing devices", st);
    int status = 0;
    for (int d = 0; d < n; d++) {
        char index[16];
        snprintf(index, sizeof index, "%d", d);
        const int s = tune_device(index, &o, dry_run, show_only, reset);
        if (s) status = s;
    }
    return status;
}
