/* libFuzzer target for network descriptions (src/model/network.c): the input is JSON
 * text. An accepted description must write out as JSON that parses back to the same
 * text (every option written, nothing lost), with consistent shapes; a refused one
 * must say why. Host only. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "network.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    snn_network *net = NULL;
    if (snn_network_parse(&net, text) != SNN_OK) {
        FUZZ_CHECK(net == NULL && snn_last_error()[0] != '\0');
        free(text);
        return 0;
    }
    char *json = NULL, *again = NULL;
    snn_network *back = NULL;
    FUZZ_CHECK(snn_network_json_alloc(net, &json) == SNN_OK);
    FUZZ_CHECK(snn_network_parse(&back, json) == SNN_OK);
    FUZZ_CHECK(snn_network_json_alloc(back, &again) == SNN_OK);
    FUZZ_CHECK(strcmp(json, again) == 0);
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < snn_network_num_layers(net, (snn_network_part)p); i++) {
            int ndim = 0;
            int64_t s[3];
            FUZZ_CHECK(snn_network_layer(net, (snn_network_part)p, i, NULL, &ndim, s) == SNN_OK);
            FUZZ_CHECK((ndim == 3 && s[0] >= 1 && s[1] >= 1 && s[2] >= 1) || (ndim == 1 && s[0] >= 1));
        }
    free(json);
    free(again);
    snn_network_free(back);
    snn_network_free(net);
    free(text);
    return 0;
}
