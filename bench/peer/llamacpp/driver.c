// llama.cpp side of bench/peer/llamacpp.sh: node-llama-cpp's prebuilt libllama driven from C, with a persistent
// ggml threadpool attached as llama-cli and llama-server do (node-llama-cpp's JS API makes one per decode, which
// stalls on 2 cores). Prints bench lines in the format of MoeSharp.Bench's `infer`:
//   driver BACKEND_DIR MODEL.gguf WEIGHTS THREADS time PP_IDS_FILE DECODE_IDS DECODE_TOKENS
//   driver BACKEND_DIR MODEL.gguf WEIGHTS THREADS check PROMPT_IDS MAX_TOKENS      (F32 KV cache, flash attention
//                                                                                  off: the bit-close setting)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "llama.h"

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static int read_ids(const char *text_or_file, llama_token *ids, int cap) {
    static char buf[1 << 20];
    FILE *f = fopen(text_or_file, "r");
    if (f) { size_t n = fread(buf, 1, sizeof buf - 1, f); buf[n] = 0; fclose(f); }
    else snprintf(buf, sizeof buf, "%s", text_or_file);
    int n = 0;
    for (char *p = strtok(buf, ", \n"); p && n < cap; p = strtok(NULL, ", \n")) ids[n++] = atoi(p);
    return n;
}

static struct llama_context *ctx;
static int vocab;

static int next(llama_token *toks, int n) {  // one batch; the greedy token after its last row
    if (llama_decode(ctx, llama_batch_get_one(toks, n)) != 0) { fprintf(stderr, "llama_decode failed\n"); exit(1); }
    const float *l = llama_get_logits_ith(ctx, -1);
    int best = 0;
    for (int i = 1; i < vocab; i++) if (l[i] > l[best]) best = i;
    return best;
}

static double run(llama_token *prompt, int n, int count, double *times) {  // seconds to each of count tokens
    llama_memory_clear(llama_get_memory(ctx), true);
    double t0 = now();
    llama_token tok = next(prompt, n);
    times[0] = now() - t0;
    for (int i = 1; i < count; i++) { tok = next(&tok, 1); times[i] = now() - t0; }
    return times[0];
}

static void quiet(enum ggml_log_level level, const char *text, void *ud) { (void)ud; if (level >= GGML_LOG_LEVEL_WARN) fputs(text, stderr); }

int main(int argc, char **argv) {
    if (argc < 8) { fprintf(stderr, "usage: see the header of driver.c\n"); return 2; }
    const char *weights = argv[3], *mode = argv[5];
    int threads = atoi(argv[4]), check = strcmp(mode, "check") == 0;
    llama_log_set(quiet, NULL);
    double t0 = now();
    ggml_backend_load_all_from_path(argv[1]);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(argv[2], mp);
    if (!model) { fprintf(stderr, "%s: llama.cpp could not load it\n", argv[2]); return 1; }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 1024;
    cp.n_batch = cp.n_ubatch = 512;
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = threads;
    if (check) { cp.type_k = cp.type_v = GGML_TYPE_F32; cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED; }
    ctx = llama_init_from_model(model, cp);
    vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    ggml_backend_reg_t cpu = ggml_backend_dev_backend_reg(ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU));
    struct ggml_threadpool *(*pool_new)(struct ggml_threadpool_params *) =
        (struct ggml_threadpool *(*)(struct ggml_threadpool_params *))ggml_backend_reg_get_proc_address(cpu, "ggml_threadpool_new");
    struct ggml_threadpool_params tpp = ggml_threadpool_params_default(threads);
    llama_attach_threadpool(ctx, pool_new(&tpp), NULL);
    double load = now() - t0;

    static llama_token a[4096], b[64];
    static double times[4096];
    if (check) {
        int n = read_ids(argv[6], a, 64), count = atoi(argv[7]);
        llama_token tok = next(a, n);
        printf("greedy impl=llama.cpp weights=%s ids=%d", weights, tok);
        for (int i = 1; i < count; i++) { tok = next(&tok, 1); printf(",%d", tok); }
        printf("\n");
        return 0;
    }
    if (argc < 9) { fprintf(stderr, "usage: see the header of driver.c\n"); return 2; }
    int npp = read_ids(argv[6], a, 4096), ndec = read_ids(argv[7], b, 64), dn = atoi(argv[8]);
    if (dn < 1 || dn + 1 > 4096) { fprintf(stderr, "DECODE_TOKENS must be 1..4095, got %s\n", argv[8]); return 2; }
    llama_token warm[16];
    for (int i = 0; i < 16; i++) warm[i] = b[i % ndec];
    run(warm, 16, 8, times);  // warm-up, as MoeSharp's side does
    double pp = run(a, npp, 1, times);
    run(b, ndec, dn + 1, times);
    printf("llm impl=llama.cpp weights=%s threads=%d pp=%d decode=%d load_s=%.3f pp_tok_s=%.2f decode_tok_s=%.3f\n",
           weights, threads, npp, dn, load, npp / pp, dn / (times[dn] - times[0]));
    return 0;
}
