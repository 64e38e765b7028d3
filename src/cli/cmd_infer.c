/* snncl infer: eval-mode forward pass of a model on a batch from a safetensors file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "batch_io.h"
#include "commands.h"
#include "snncl.h"

typedef struct infer_job {
    snn_context *ctx;
    snn_model *model;
    cli_batch batch;
    snn_safetensors *output;
    float *logits, *lyap_ps;
} infer_job;

static void job_free(infer_job *j) {
    free(j->logits);
    free(j->lyap_ps);
    cli_batch_free(&j->batch);
    snn_safetensors_free(j->output);
    snn_model_free(j->model);
    snn_context_free(j->ctx);
}

int cmd_infer(int argc, char **argv) {
    const char *model_path = NULL, *input_path = NULL, *output_path = NULL, *perturb_path = NULL, *device = NULL;
    int lyapunov = 0;
    snn_forward_params fp;
    snn_forward_params_default(&fp);
    cli_option opts[] = {
        {"model", CLI_STRING, &model_path, "PATH", "model (safetensors: state_dict names + metadata)", 1, 0},
        {"input", CLI_STRING, &input_path, "PATH", "batch: tensor 'input', (B,C,H,W) or (B,T,C,H,W)", 1, 0},
        {"output", CLI_STRING, &output_path, "PATH", "where to write logits (and the estimate)", 1, 0},
        {"lyapunov", CLI_FLAG, &lyapunov, NULL, "also compute the largest Lyapunov exponent estimate", 0, 0},
        {"lyap-eps", CLI_FLOAT, &fp.lyap_eps, "E", "perturbation size", 0, 0},
        {"perturb", CLI_STRING, &perturb_path, "PATH", "initial perturbation perturb.0.. (default: drawn from --seed)", 0, 0},
        {"seed", CLI_U64, &fp.seed, "N", "seed for rate encoding and the perturbation", 0, 0},
        {"device", CLI_STRING, &device, "N|NAME", "OpenCL device (default $SNNCL_DEVICE or 0)", 0, 0},
    };
    const size_t nopts = sizeof opts / sizeof opts[0];
    int rc = cli_parse_command("infer", argc, argv, opts, nopts, "snncl infer --model M --input X --output Y [options]",
                               "Runs the model in eval mode on a batch and writes 'logits' (B, classes); with\n"
                               "--lyapunov also 'lyapunov' (1,) (batch mean) and 'lyapunov_per_sample' (B,).");
    if (rc >= 0) return rc;
    if (perturb_path && !lyapunov) {
        fprintf(stderr, "snncl infer: --perturb needs --lyapunov\n");
        return 2;
    }
    if (!(fp.lyap_eps > 0.0f)) {
        fprintf(stderr, "snncl infer: --lyap-eps must be positive\n");
        return 2;
    }
    fp.lyapunov = lyapunov;

    infer_job j;
    memset(&j, 0, sizeof j);
    snn_status st;
    int status = 1, batch = 0;
    snn_model_config cfg;
    if ((st = cli_open_model(device, model_path, &j.ctx, &j.model)) != SNN_OK) goto done;
    snn_model_get_config(j.model, &cfg);
    if ((st = cli_read_input("infer", &j.batch, input_path, &cfg)) != SNN_OK) {
        if (st != SNN_ERR_SHAPE && st != SNN_ERR_NOT_FOUND) cli_report("reading the input", st);
        goto done;
    }
    batch = j.batch.batch;
    fp.pre_encoded = j.batch.pre_encoded;
    if (perturb_path && (st = cli_read_perturb(&j.batch, perturb_path, j.model)) != SNN_OK) {
        cli_report("reading the perturbation", st);
        goto done;
    }
    fp.perturb = (const float *const *)j.batch.perturb;
    float lyap = 0;
    j.logits = malloc((size_t)batch * (size_t)cfg.num_classes * sizeof(float));
    j.lyap_ps = malloc((size_t)batch * sizeof(float));
    if (!j.logits || !j.lyap_ps) {
        fprintf(stderr, "snncl infer: out of memory\n");
        goto done;
    }
    if ((st = snn_model_forward(j.model, j.batch.x, batch, &fp, j.logits, &lyap, j.lyap_ps)) != SNN_OK) {
        cli_report("running the model", st);
        goto done;
    }
    int64_t lshape[2] = {batch, cfg.num_classes}, one = 1, bshape = batch;
    if ((st = snn_safetensors_create(&j.output)) != SNN_OK ||
        (st = snn_safetensors_add(j.output, "logits", SNN_F32, 2, lshape, j.logits)) != SNN_OK ||
        (lyapunov && (st = snn_safetensors_add(j.output, "lyapunov", SNN_F32, 1, &one, &lyap)) != SNN_OK) ||
        (lyapunov && (st = snn_safetensors_add(j.output, "lyapunov_per_sample", SNN_F32, 1, &bshape, j.lyap_ps)) != SNN_OK) ||
        (st = snn_safetensors_write(j.output, output_path)) != SNN_OK) {
        cli_report("writing the output", st);
        goto done;
    }
    printf("wrote %s: logits (%d, %d)", output_path, batch, cfg.num_classes);
    if (lyapunov) printf(", lyapunov %.6f (batch mean)", (double)lyap);
    printf("\n");
    status = 0;
done:
    job_free(&j);
    return status;
}
