/*
 * libFuzzer target: the CSV time-series reader, then a split of what it
 * read into train and test series (as `[data] source = csv` does).
 */
#include "fuzz_util.h"
#include "nde/data.h"
#include "nde/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nde_ctx *ctx = nde_ctx_create();
    nde_dataset *d = NULL, *train = NULL, *test = NULL;
    fuzz_file f;

    if (!ctx)
        abort();
    fuzz_file_open(&f, "series.csv", data, size);
    if (nde_data_read_csv(f.path, &d, ctx) == NDE_OK) {
        if (nde_data_split(d, 0.25, 7, &train, &test, ctx) == NDE_OK) {
            nde_dataset_destroy(train);
            nde_dataset_destroy(test);
        }
        nde_dataset_destroy(d);
    }
    fuzz_file_close(&f);
    nde_ctx_destroy(ctx);
    return 0;
}
