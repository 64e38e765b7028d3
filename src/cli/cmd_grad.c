/* snncl grad: one training-mode forward and backward pass on a batch, without an
 * update, writing the loss and every trainable parameter's gradient. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "batch_io.h"
#include "commands.h"
#include "snncl.h"

int cmd_grad(int argc, char **argv) {
    const char *model_path = NULL, *input_path = NULL, *labels_path = NULL, *output_path = NULL;
    const char *perturb_path = NULL, *device = NULL;
    uint64_t seed = 0;
    snn_train_config tc;
    snn_train_config_default(&tc);
    tc.schedule = SNN_SCHEDULE_CONSTANT;
    cli_option opts[] = {
        {"model", CLI_STRING, &model_path, "PATH", "model (safetensors: state_dict names + metadata)", 1, 0},
        {"input", CLI_STRING, &input_path, "PATH", "batch: tensor 'input', (B,C,H,W) or (B,T,C,H,W)", 1, 0},
        {"labels", CLI_STRING, &labels_path, "PATH", "tensor 'labels', int64 (B,)", 1, 0},
        {"output", CLI_STRING, &output_path, "PATH", "where to write loss, lyapunov and grad.<name>", 1, 0},
        {"lyap-weight", CLI_FLOAT, &tc.lyap_weight, "W", "weight of (lambda - target)^2 (default 0.1; 0: off)", 0, 0},
        {"lyap-target", CLI_FLOAT, &tc.lyap_target, "T", "target exponent", 0, 0},
        {"lyap-eps", CLI_FLOAT, &tc.lyap_eps, "E", "perturbation size", 0, 0},
        {"perturb", CLI_STRING, &perturb_path, "PATH", "initial perturbation perturb.0.. (default: drawn from --seed)", 0, 0},
        {"seed", CLI_U64, &seed, "N", "seed for rate encoding, dropout and the perturbation", 0, 0},
        {"device", CLI_STRING, &device, "N|NAME", "OpenCL device (default $SNNCL_DEVICE or 0)", 0, 0},
    };
    const size_t nopts = sizeof opts / sizeof opts[0];
    int rc = cli_parse_command("grad", argc, argv, opts, nopts, "snncl grad --model M --input X --labels Y --output G [options]",
                               "Runs one training-mode step (BatchNorm batch statistics; dropout as the model's\n"
                               "metadata says) without updating the model, and writes 'loss', 'cross_entropy',\n"
                               "'lyapunov' (when --lyap-weight > 0) and 'grad.<name>' for every trainable\n"
                               "parameter, <name> being its PyTorch state_dict name.");
    if (rc >= 0) return rc;
    if (!(tc.lyap_weight >= 0.0f) || !(tc.lyap_eps > 0.0f)) {
        fprintf(stderr, "snncl grad: --lyap-weight must be >= 0 and --lyap-eps positive\n");
        return 2;
    }
    if (perturb_path && tc.lyap_weight == 0.0f) {
        fprintf(stderr, "snncl grad: --perturb needs --lyap-weight > 0\n");
        return 2;
    }

    snn_context *ctx = NULL;
    snn_model *model = NULL;
    snn_trainer *tr = NULL;
    snn_safetensors *out = NULL;
    cli_batch b;
    memset(&b, 0, sizeof b);
    float *g = NULL;
    int status = 1;
    snn_status st;
    snn_model_config cfg;
    if ((st = cli_open_model(device, model_path, &ctx, &model)) != SNN_OK) goto done;
    snn_model_get_config(model, &cfg);
    if ((st = cli_read_input("grad", &b, input_path, &cfg)) != SNN_OK) {
        if (st != SNN_ERR_SHAPE && st != SNN_ERR_NOT_FOUND) cli_report("reading the input", st);
        goto done;
    }
    if ((st = cli_read_labels("grad", &b, labels_path, cfg.num_classes)) != SNN_OK) {
        if (st != SNN_ERR_SHAPE && st != SNN_ERR_NOT_FOUND && st != SNN_ERR_FORMAT) cli_report("reading the labels", st);
        goto done;
    }
    if (perturb_path && (st = cli_read_perturb(&b, perturb_path, model)) != SNN_OK) {
        cli_report("reading the perturbation", st);
        goto done;
    }
    if ((st = snn_trainer_create(&tr, model, &tc)) != SNN_OK) {
        cli_report("setting up training", st);
        goto done;
    }
    snn_batch batch = {.input = b.x, .labels = b.labels, .size = b.batch, .seed = seed,
                       .perturb = (const float *const *)b.perturb, .pre_encoded = b.pre_encoded};
    snn_step_stats s;
    if ((st = snn_trainer_gradients(tr, &batch, &s)) != SNN_OK) {
        cli_report("computing gradients", st);
        goto done;
    }
    int64_t one = 1;
    if ((st = snn_safetensors_create(&out)) != SNN_OK || (st = snn_safetensors_add(out, "loss", SNN_F32, 1, &one, &s.loss)) != SNN_OK ||
        (st = snn_safetensors_add(out, "cross_entropy", SNN_F32, 1, &one, &s.cross_entropy)) != SNN_OK ||
        (tc.lyap_weight > 0.0f && (st = snn_safetensors_add(out, "lyapunov", SNN_F32, 1, &one, &s.lyapunov)) != SNN_OK)) {
        cli_report("collecting the output", st);
        goto done;
    }
    for (int i = 0; i < snn_trainer_num_grads(tr); i++) {
        const char *name;
        int ndim;
        int64_t shape[4];
        size_t count;
        char key[128];
        snn_trainer_grad_info(tr, i, &name, &ndim, shape, &count);
        free(g);
        g = malloc(count * sizeof(float));
        if (!g) {
            fprintf(stderr, "snncl grad: out of memory\n");
            goto done;
        }
        snprintf(key, sizeof key, "grad.%s", name);
        if ((st = snn_trainer_read_grad(tr, i, g)) != SNN_OK || (st = snn_safetensors_add(out, key, SNN_F32, ndim, shape, g)) != SNN_OK) {
            cli_report("collecting the gradients", st);
            goto done;
        }
    }
    if ((st = snn_safetensors_write(out, output_path)) != SNN_OK) {
        cli_report("writing the output", st);
        goto done;
    }
    printf("wrote %s: loss %.6f (cross-entropy %.6f", output_path, (double)s.loss, (double)s.cross_entropy);
    if (tc.lyap_weight > 0.0f) printf(", lyapunov %.6f", (double)s.lyapunov);
    printf("), %d gradients, norm %.6g\n", snn_trainer_num_grads(tr), (double)s.grad_norm);
    status = 0;
done:
    free(g);
    snn_safetensors_free(out);
    cli_batch_free(&b);
    snn_trainer_free(tr);
    snn_model_free(model);
    snn_context_free(ctx);
    return status;
}
