/* snncl bench: standard workloads timed on one device or on every device, as a table
 * and as JSON lines, so devices (and snncl against the seed) can be compared. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "parallel.h"
#include "commands.h"
#include "progress.h"
#include "snncl_opencl.h"

static const char *const mode_names[] = {"forward", "forward-lyapunov", "train", "train-lyapunov"};

/* One item of a comma-separated list; returns the next position or NULL at the end. */
static const char *next_item(const char *p, char *buf, size_t len) {
    if (!p || !*p) return NULL;
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    if (n >= len) n = len - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return comma ? comma + 1 : p + strlen(p);
}

typedef struct workload {
    char model[16], encoding[16];
    int H, W, C, T, batch;
} workload;

/* s with quotes, backslashes and control characters replaced, for a JSON string. */
static const char *json_safe(const char *s, char *buf, size_t len) {
    size_t k = 0;
    for (; *s && k + 1 < len; s++) buf[k++] = (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) ? ' ' : *s;
    buf[k] = '\0';
    return buf;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The batch in device buffers of ctx's OpenCL context, for steps that wait for the
 * device only every few steps (snn_trainer_step_cl). */
static snn_status device_batch(snn_context *ctx, const float *x, size_t xn, const int64_t *labels, int batch,
                               cl_mem *dx, cl_mem *dl) {
    cl_context c;
    snn_status st = snn_context_get_cl(ctx, &c, NULL, NULL);
    if (st != SNN_OK) return st;
    cl_int *lab = malloc((size_t)batch * sizeof *lab);
    if (!lab) return SNN_ERR_OUT_OF_MEMORY;
    for (int b = 0; b < batch; b++) lab[b] = (cl_int)labels[b];
    cl_int e1, e2;
    *dx = clCreateBuffer(c, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, xn * sizeof(float), (void *)x, &e1);
    *dl = clCreateBuffer(c, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, (size_t)batch * sizeof *lab, lab, &e2);
    free(lab);
    if (e1 == CL_SUCCESS && e2 == CL_SUCCESS) return SNN_OK;
    fprintf(stderr, "snncl bench: device buffers for the batch: OpenCL error %d\n", e1 != CL_SUCCESS ? e1 : e2);
    return SNN_ERR_OPENCL;
}

/* Times `runs` calls of one mode after `warmup` untimed ones; ms sorted ascending.
 * Training with sync_every > 1: each run is that many steps on device buffers and one
 * wait for the device (snn_trainer_wait), timed per step. Under mpirun each rank runs
 * its share of the batch (training averages over the ranks) and every run ends when
 * the slowest rank's does. */
static snn_status time_mode(const cli_parallel *par, snn_context *ctx, snn_model *model, int mode, const float *x,
                            size_t xn, const int64_t *labels, int batch, int warmup, int runs, int sync_every,
                            double *ms) {
    const int lyap = mode == 1 || mode == 3, train = mode >= 2;
    snn_trainer *tr = NULL;
    snn_status st = SNN_OK;
    if (train) {
        snn_train_config tc;
        snn_train_config_default(&tc);
        tc.schedule = SNN_SCHEDULE_CONSTANT;
        tc.lr = 1e-5f; /* the model barely moves, so every run times the same work */
        tc.lyap_weight = lyap ? 0.1f : 0.0f;
        if ((st = snn_trainer_create(&tr, model, &tc)) != SNN_OK) return st;
    }
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    fp.lyapunov = lyap;
    const size_t K = 10;
    float *logits = malloc((size_t)batch * K * sizeof(float));
    if (!logits) {
        snn_trainer_free(tr);
        return SNN_ERR_OUT_OF_MEMORY;
    }
    cl_mem dx = NULL, dl = NULL;
    if (train && sync_every > 1) st = device_batch(ctx, x, xn, labels, batch, &dx, &dl);
    for (int r = -warmup; r < runs && st == SNN_OK; r++) {
        const double t0 = cli_now();
        if (train && sync_every > 1) {
            for (int k = 0; k < sync_every && st == SNN_OK; k++) {
                const snn_batch_cl b = {.input = dx, .labels = dl, .size = batch, .seed = (uint64_t)(r + 100)};
                st = snn_trainer_step_cl(tr, &b, 0, NULL, NULL);
            }
            if (st == SNN_OK) st = snn_trainer_wait(tr, NULL);
            if (r >= 0) ms[r] = 1e3 * (cli_now() - t0) / sync_every;
            continue;
        }
        /* this rank's share [lo, hi) of the batch (all of it alone) */
        const size_t per = xn / (size_t)batch, lo = (size_t)batch * (size_t)par->rank / (size_t)par->ranks,
                     hi = (size_t)batch * (size_t)(par->rank + 1) / (size_t)par->ranks;
        if (train) {
            snn_batch b = {.input = x + lo * per, .labels = labels + lo, .size = (int)(hi - lo),
                           .seed = (uint64_t)(r + 100), .first = (int64_t)lo};
            st = cli_parallel_step(par, tr, &b, NULL);
        } else {
            fp.seed = (uint64_t)(r + 100);
            float lam;
            st = snn_model_forward(model, x + lo * per, (int)(hi - lo), &fp, logits, &lam, NULL);
        }
        if (st == SNN_OK) st = snn_context_finish(ctx);
        if (cli_parallel_any(par, st != SNN_OK) && st == SNN_OK) /* the slowest rank ends the run */
            st = snn_report_error(SNN_ERR_INVALID_ARG, "another rank failed (its message says why)");
        if (r >= 0) ms[r] = 1e3 * (cli_now() - t0);
    }
    free(logits);
    snn_trainer_free(tr);
    if (dx) clReleaseMemObject(dx);
    if (dl) clReleaseMemObject(dl);
    if (st == SNN_OK) qsort(ms, (size_t)runs, sizeof(double), cmp_double);
    return st;
}

/* Leaves MPI (under mpirun) and returns the exit status. */
static int bench_end(const cli_parallel *par, int status) {
    cli_parallel_finish(par, status);
    return status;
}

int cmd_bench(int argc, char **argv) {
    const char *models = "simple", *inputs = "32x32x3", *steps = "25", *encodings = "rate",
               *modes = "forward,forward-lyapunov,train,train-lyapunov", *device = NULL, *json = NULL, *net_path = NULL;
    int batch = 32, runs = 5, warmup = 1, all_devices = 0, sync_every = 1;
    cli_option opts[] = {
        {"model", CLI_STRING, &models, "LIST", "simple,vgg (default simple; the seed's default channels)", 0, 0},
        {"net", CLI_STRING, &net_path, "FILE.json",
         "time a network description instead (its own input, T and encoding; no --model, --input, --T, --encoding)",
         0, 0},
        {"input", CLI_STRING, &inputs, "LIST", "HxWxC sizes, e.g. 32x32x3,28x28x1", 0, 0},
        {"T", CLI_STRING, &steps, "LIST", "time steps, e.g. 25,8", 0, 0},
        {"encoding", CLI_STRING, &encodings, "LIST", "rate,direct", 0, 0},
        {"mode", CLI_STRING, &modes, "LIST", "forward,forward-lyapunov,train,train-lyapunov", 0, 0},
        {"batch", CLI_INT, &batch, "N", "batch size", 0, 0},
        {"runs", CLI_INT, &runs, "N", "timed runs per workload", 0, 0},
        {"warmup", CLI_INT, &warmup, "N", "untimed runs first", 0, 0},
        {"device", CLI_STRING, &device, "N|NAME", "OpenCL device (default $SNNCL_DEVICE or 0)", 0, 0},
        {"all-devices", CLI_FLAG, &all_devices, NULL, "run on every device found", 0, 0},
        {"json", CLI_STRING, &json, "PATH", "also append one JSON object per result to PATH", 0, 0},
        {"sync-every", CLI_INT, &sync_every, "N",
         "training: N steps on device buffers per wait for the device (default 1: host arrays, a wait per step)", 0,
         0},
    };
    const size_t nopts = sizeof opts / sizeof opts[0];
    int rc = cli_parse_command("bench", argc, argv, opts, nopts, "snncl bench [options]",
                               "Times standard workloads (fresh models with the seed's initialization, random\n"
                               "images) and prints median, min and max milliseconds per batch, images/s at the\n"
                               "median, the convolution and linear GFLOP/s, and the peak device memory.");
    if (rc >= 0) return rc;
    cli_parallel par; /* under mpirun: each rank a share of every batch, rank 0 prints */
    rc = cli_parallel_init(&par, "bench");
    if (rc) return rc;
    if (batch < 2 || runs < 1 || warmup < 0 || sync_every < 1 || (device && all_devices) ||
        (par.ranks > 1 && (all_devices || sync_every > 1 || batch < 2 * par.ranks))) {
        fprintf(stderr, "snncl bench: --batch >= 2, --runs >= 1, --warmup >= 0, --sync-every >= 1; --device and "
                        "--all-devices exclude each other; under mpirun neither --all-devices nor --sync-every, and "
                        "at least 2 images per rank\n");
        return bench_end(&par, 2);
    }
    if (par.rank != 0) json = NULL; /* rank 0 alone writes the JSON */
    /* --net: one workload, the description's; its model is made per mode like a preset's. */
    snn_network *net = NULL;
    snn_status st0;
    char net_input[48], net_T[16];
    if (net_path) {
        for (size_t k = 0; k < nopts; k++)
            if (opts[k].seen && (!strcmp(opts[k].name, "model") || !strcmp(opts[k].name, "input") ||
                                 !strcmp(opts[k].name, "T") || !strcmp(opts[k].name, "encoding"))) {
                fprintf(stderr, "snncl bench: --%s does not apply with --net: the description states it\n", opts[k].name);
                return bench_end(&par, 2);
            }
        if ((st0 = snn_network_load(&net, net_path)) != SNN_OK) return bench_end(&par, cli_report("reading --net", st0));
        int C, H, W, T;
        snn_encoding enc;
        snn_network_input(net, &C, &H, &W, NULL, &T, &enc, NULL);
        if (enc == SNN_ENCODING_NONE) {
            fprintf(stderr, "snncl bench: %s takes pre-encoded spikes (encoding none); bench times images\n", net_path);
            snn_network_free(net);
            return bench_end(&par, 2);
        }
        snprintf(net_input, sizeof net_input, "%dx%dx%d", H, W, C);
        snprintf(net_T, sizeof net_T, "%d", T);
        models = "net";
        inputs = net_input;
        steps = net_T;
        encodings = snn_encoding_name(enc);
    }
    /* Validate the lists before any device work. */
    char item[64];
    int mode_mask = 0;
    for (const char *p = modes; (p = next_item(p, item, sizeof item)) != NULL;) {
        int found = -1;
        for (int m = 0; m < 4; m++)
            if (!strcmp(item, mode_names[m])) found = m;
        if (found < 0) {
            fprintf(stderr, "snncl bench: unknown mode '%s' (forward, forward-lyapunov, train, train-lyapunov)\n", item);
            return bench_end(&par, 2);
        }
        mode_mask |= 1 << found;
    }
    int ndev = 0;
    snn_status st = snn_device_count(&ndev);
    if (st != SNN_OK) return bench_end(&par, cli_report("listing devices", st));
    FILE *jf = NULL;
    if (json && !(jf = fopen(json, "a"))) {
        fprintf(stderr, "snncl bench: cannot open %s for writing\n", json);
        return bench_end(&par, 1);
    }
    int status = 0;
    double *ms = malloc((size_t)runs * sizeof(double));
    printf("%-34s %-17s %-40s %10s %9s %9s %9s %8s %8s\n", "device", "mode", "workload", "images/s", "ms med",
           "ms min", "ms max", "GFLOP/s", "peak MB");
    for (int d = 0; d < (all_devices ? ndev : 1) && !status; d++) {
        snn_context_params cp;
        snn_context_params_default(&cp);
        char index[16];
        snprintf(index, sizeof index, "%d", d);
        cp.device = all_devices ? index : device;
        cp.clblast_tuning = 1; /* the whole process is snncl: its tuning may be process-wide */
        snn_context *ctx = NULL;
        if ((st = snn_context_create(&ctx, &cp)) != SNN_OK) {
            status = cli_report("opening the device", st);
            break;
        }
        snn_device_info info;
        snn_context_device_info(ctx, &info);
        const char *gemm = "?", *reason = "?";
        snn_context_gemm_info(ctx, &gemm, &reason);
        fprintf(stderr, "snncl bench: %s: GEMM %s (%s%s)\n", info.name, gemm, reason,
                strcmp(reason, "device-type default") == 0 ? "; see snncl tune" : "");
        char mitem[16], iitem[32], titem[16], eitem[16];
        for (const char *pm = models; !status && (pm = next_item(pm, mitem, sizeof mitem));)
            for (const char *pi = inputs; !status && (pi = next_item(pi, iitem, sizeof iitem));)
                for (const char *pt = steps; !status && (pt = next_item(pt, titem, sizeof titem));)
                    for (const char *pe = encodings; !status && (pe = next_item(pe, eitem, sizeof eitem));) {
                        snn_model_config cfg;
                        int H, W, C, T = atoi(titem);
                        if (net) {
                            snn_model_config_default(&cfg, "simple"); /* the sizes below; the model is net's */
                            snn_network_input(net, NULL, NULL, NULL, &cfg.num_classes, NULL, NULL, NULL);
                        } else if (snn_model_config_default(&cfg, mitem) != SNN_OK) {
                            cfg.kind = (snn_model_kind)-1; /* refused below */
                        }
                        if ((int)cfg.kind < 0 || sscanf(iitem, "%dx%dx%d", &H, &W, &C) != 3 ||
                            H < 1 || W < 1 || C < 1 || T < 1 || snn_encoding_parse(eitem, &cfg.encoding) != SNN_OK ||
                            cfg.encoding == SNN_ENCODING_NONE) {
                            fprintf(stderr, "snncl bench: bad workload model=%s input=%s T=%s encoding=%s\n", mitem,
                                    iitem, titem, eitem);
                            status = 2;
                            break;
                        }
                        cfg.height = H;
                        cfg.width = W;
                        cfg.in_channels = C;
                        cfg.T = T;
                        const size_t n = (size_t)batch * (size_t)C * (size_t)H * (size_t)W;
                        float *x = malloc(n * sizeof(float));
                        int64_t *labels = malloc((size_t)batch * sizeof(int64_t));
                        if (!x || !labels) {
                            free(x);
                            free(labels);
                            status = 1;
                            break;
                        }
                        uint64_t s = 12345;
                        for (size_t i = 0; i < n; i++) {
                            s = s * 6364136223846793005ull + 1442695040888963407ull;
                            x[i] = (float)(s >> 40) / 16777216.0f;
                        }
                        for (int b = 0; b < batch; b++) labels[b] = b % cfg.num_classes;
                        char wl[128];
                        if (par.ranks > 1)
                            snprintf(wl, sizeof wl, "%s %s B=%d T=%d %s, %d ranks", mitem, iitem, batch, T, eitem,
                                     par.ranks);
                        else
                            snprintf(wl, sizeof wl, "%s %s B=%d T=%d %s", mitem, iitem, batch, T, eitem);
                        for (int mode = 0; mode < 4 && !status; mode++) {
                            if (!(mode_mask & (1 << mode))) continue;
                            /* A fresh model per mode: the peak then counts only this mode's
                             * buffers, not those another mode left cached. */
                            snn_model *model = NULL;
                            snn_context_reset_peak(ctx);
                            st = net ? snn_model_create_network(&model, ctx, net, 1) : snn_model_create(&model, ctx, &cfg, 1);
                            if (st != SNN_OK) {
                                status = cli_report("creating the model", st);
                                break;
                            }
                            st = time_mode(&par, ctx, model, mode, x, n, labels, batch, warmup, runs, sync_every, ms);
                            double flops = 0;
                            if (st == SNN_OK) st = snn_model_flops(model, mode == 1 || mode == 3, mode >= 2, &flops);
                            snn_model_free(model);
                            if (st != SNN_OK) {
                                status = cli_report(mode_names[mode], st);
                                break;
                            }
                            size_t peak = 0;
                            snn_context_memory(ctx, NULL, &peak);
                            const double med = runs % 2 ? ms[runs / 2] : 0.5 * (ms[runs / 2 - 1] + ms[runs / 2]);
                            const double ips = batch * 1e3 / med, gflops = flops * batch / (med * 1e6);
                            const double mb = (double)peak / 1048576.0;
                            const int waits = mode >= 2 ? sync_every : 1; /* steps per wait */
                            char mname[32];
                            snprintf(mname, sizeof mname, waits > 1 ? "%s/%d" : "%s", mode_names[mode], waits);
                            printf("%-34.34s %-17s %-40s %10.1f %9.1f %9.1f %9.1f %8.1f %8.1f\n", info.name, mname,
                                   wl, ips, med, ms[0], ms[runs - 1], gflops, mb);
                            fflush(stdout);
                            char jn[256], jv[256], jd[128];
                            if (jf)
                                fprintf(jf,
                                        "{\"device\": \"%s\", \"vendor\": \"%s\", \"driver\": \"%s\", \"workload\": "
                                        "\"%s\", \"model\": \"%s\", \"input\": \"%s\", \"encoding\": \"%s\", \"mode\": "
                                        "\"%s\", \"batch\": %d, \"T\": %d, \"runs\": %d, \"images_per_s\": %.3f, "
                                        "\"ms_median\": %.3f, \"ms_min\": %.3f, \"ms_max\": %.3f, \"gflops\": %.3f, "
                                        "\"peak_device_mb\": %.1f, \"gemm\": \"%s\", \"steps_per_wait\": %d, \"ranks\": %d}\n",
                                        json_safe(info.name, jn, sizeof jn), json_safe(info.vendor, jv, sizeof jv),
                                        json_safe(info.driver_version, jd, sizeof jd), wl, mitem, iitem, eitem,
                                        mode_names[mode], batch, T, runs, ips, med, ms[0], ms[runs - 1], gflops, mb, gemm,
                                        waits, par.ranks);
                        }
                        free(x);
                        free(labels);
                    }
        snn_context_free(ctx);
    }
    free(ms);
    snn_network_free(net);
    if (jf && fclose(jf) != 0) {
        fprintf(stderr, "snncl bench: writing %s failed\n", json);
        status = status ? status : 1;
    }
    return bench_end(&par, status);
}
