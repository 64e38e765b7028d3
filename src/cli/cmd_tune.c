/* snncl tune: measures which GEMM implementation (and which CLBlast parameters) is
 * fastest on a device and stores the choice, which every later context on that device
 * uses (snn_tune in the public header). */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "snncl.h"

static void print_line(void *user, const char *line) {
    printf("  %s%s\n", (const char *)user, line);
    fflush(stdout);
}

static void print_result(const snn_tune_result *t) {
    printf("  gemm: %s; native %.1f ms, CLBlast %.1f ms (its own parameters), %.1f ms (best of %d sets)\n", t->gemm,
           t->native_ms, t->clblast_default_ms, t->clblast_tuned_ms, t->candidates_tried - t->candidates_failed);
    if (t->xgemm[0]) printf("  CLBlast Xgemm: %s\n", t->xgemm);
}

static void show(snn_context *ctx) {
    snn_tune_result t;
    int found = 0;
    if (snn_tune_stored(ctx, &t, &found) != SNN_OK) {
        printf("  %s: unusable (%s); the device-type default applies\n", t.path[0] ? t.path : "tuning file",
               snn_last_error());
        return;
    }
    if (!found) {
        printf("  not tuned (%s does not exist); the device-type default applies\n", t.path);
        return;
    }
    printf("  %s\n", t.path);
    print_result(&t);
}

/* Tunes one device; returns an exit status. */
static int tune_device(const char *device, const snn_tune_params *tp, int show_only, int reset) {
    snn_context_params cp;
    snn_context_params_default(&cp);
    cp.device = device;
    cp.clblast_tuning = 1; /* the whole process is snncl: its tuning may be process-wide */
    snn_context *ctx = NULL;
    snn_status st = snn_context_create(&ctx, &cp);
    if (st != SNN_OK) return cli_report("opening the device", st);
    snn_device_info info;
    snn_context_device_info(ctx, &info);
    printf("%s (%s, driver %s)\n", info.name, info.platform, info.driver_version);
    int status = 0;
    if (show_only) {
        show(ctx);
    } else if (reset) {
        char path[1200];
        if ((st = snn_tune_forget(ctx, path, sizeof path)) != SNN_OK)
            status = cli_report("removing the tuning", st);
        else
            printf("  removed %s; the device-type default applies\n", path);
    } else {
        snn_tune_result t;
        st = snn_tune(ctx, tp, &t);
        if (st != SNN_OK) {
            status = cli_report("tuning", st);
        } else {
            printf("  chosen: %s%s\n", t.gemm,
                   strcmp(t.gemm, "clblast") == 0 ? (t.xgemm[0] ? " with the best parameter set above"
                                                               : " with its own parameters")
                                                  : "");
            if (tp->store)
                printf("  stored in %s\n", t.path);
            else
                printf("  not stored (--dry-run)\n");
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
        {"candidates", CLI_INT, &candidates, "N", "CLBlast Xgemm parameter sets to try besides its own", 0, 0},
        {"runs", CLI_INT, &runs, "N", "timed runs per product, median taken", 0, 0},
        {"cols", CLI_INT, &cols, "N", "columns of the largest products", 0, 0},
        {"dry-run", CLI_FLAG, &dry_run, NULL, "measure and print, store nothing", 0, 0},
        {"show", CLI_FLAG, &show_only, NULL, "print the stored tuning and exit", 0, 0},
        {"reset", CLI_FLAG, &reset, NULL, "delete the stored tuning (back to the device-type default)", 0, 0},
    };
    const size_t nopts = sizeof opts / sizeof opts[0];
    int rc = cli_parse_command("tune", argc, argv, opts, nopts, "snncl tune [options]",
                               "Times the hand-written GEMM kernels (cl/gemm.cl) and CLBlast, with its own\n"
                               "parameters and with --candidates other Xgemm parameter sets, on the matrix\n"
                               "products of the default workload, and stores the fastest choice for the device.\n"
                               "Every later context on that device, driver and snncl version uses it; without\n"
                               "one, CPUs use the native kernels and other devices CLBlast. The file lives in\n"
                               "$SNNCL_CACHE_DIR, else $XDG_CACHE_HOME/snncl, else ~/.cache/snncl.\n"
                               "SNNCL_TUNING=0 ignores it; SNNCL_GEMM=native|clblast overrides both.");
    if (rc >= 0) return rc;
    if (candidates < 0 || candidates > 256 || runs < 1 || runs > 16 || cols < 64 || show_only + reset + dry_run > 1 ||
        (all_devices && device)) {
        fprintf(stderr, "snncl tune: --candidates 0-256, --runs 1-16, --cols >= 64; at most one of --show, --reset, "
                        "--dry-run; --device or --all-devices\n");
        return 2;
    }
    /* The products of the default workload (snncl bench's first: simple, 32x32x3, B = 32). */
    snn_tune_params tp;
    snn_tune_params_default(&tp);
    tp.candidates = candidates;
    tp.runs = runs;
    tp.max_cols = cols;
    tp.store = !dry_run;
    tp.progress = print_line;
    tp.user = "";
    if (!all_devices) return tune_device(device, &tp, show_only, reset);
    int n = 0;
    snn_status st = snn_device_count(&n);
    if (st != SNN_OK) return cli_report("listing devices", st);
    int status = 0;
    for (int d = 0; d < n; d++) {
        char index[16];
        snprintf(index, sizeof index, "%d", d);
        const int s = tune_device(index, &tp, show_only, reset);
        if (s) status = s;
    }
    return status;
}
