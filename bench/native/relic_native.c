// relic_native: the native contender for Relic's benchmarks.
//
// Compiled at bench time against the very libllama Relic loads (and its pinned
// headers) by bench/native/build.py; never committed as a binary.  It runs the
// same jobs as the Python and Lua contenders, with nothing in between the
// caller and llama.cpp, and prints one JSON object on stdout.
//
//   relic-native gen   MODEL PROMPT_FILE N_GEN THREADS N_CTX N_BATCH
//       load the model, decode the prompt (tokenized with add_special=true) in
//       one batch, then N_GEN greedy tokens one decode each (sample, piece,
//       decode), never stopping at end-of-generation.
//   relic-native micro MODEL TEXT_FILE SECONDS
//       calls/s of llama_detokenize (the text's first 16 tokens), llama_token_to_piece,
//       llama_vocab_is_eog (one token per call, cycling over the text's tokens)
//       and llama_tokenize (the whole text).
//   relic-native load  MODEL THREADS N_CTX
//       model load and context creation times only.
//
// Like llama.cpp's own examples this is a program, not library code: on an
// error it prints a message to stderr and exits non-zero.

#define _POSIX_C_SOURCE 200809L
#include "llama.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

static void die(const char * what) {
    fprintf(stderr, "relic-native: %s\n", what);
    exit(1);
}

// Only errors reach stderr, unless RELIC_NATIVE_VERBOSE is set.
static void quiet_log(enum ggml_log_level level, const char * text, void * user) {
    static enum ggml_log_level last = GGML_LOG_LEVEL_INFO;
    (void) user;
    if (level != GGML_LOG_LEVEL_CONT) {
        last = level;
    }
    if (last >= GGML_LOG_LEVEL_ERROR || getenv("RELIC_NATIVE_VERBOSE")) {
        fputs(text, stderr);
    }
}

// Model loading reports progress (a line of dots) unless given a callback.
static bool no_progress(float progress, void * user) {
    (void) progress;
    (void) user;
    return true;
}

static char * read_file(const char * path, size_t * len) {
    FILE * f = fopen(path, "rb");
    if (!f) die("cannot open the text file");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char * buf = malloc((size_t) n + 1);
    if (!buf || fread(buf, 1, (size_t) n, f) != (size_t) n) die("cannot read the text file");
    buf[n] = 0;
    fclose(f);
    *len = (size_t) n;
    return buf;
}

// The caller owns the returned array (free it).
static llama_token * tokenize(const struct llama_vocab * vocab, const char * text, size_t len, int * n_out) {
    int cap = (int) len + 8;
    llama_token * toks = malloc(sizeof(llama_token) * (size_t) cap);
    int n = llama_tokenize(vocab, text, (int32_t) len, toks, cap, true, false);
    if (n < 0) die("tokenize failed");
    *n_out = n;
    return toks;
}

static struct llama_model * load_model(const char * path, double * ms) {
    struct llama_model_params mp = llama_model_default_params();
    mp.progress_callback = no_progress;
    double t0 = now_s();
    struct llama_model * model = llama_model_load_from_file(path, mp);
    *ms = (now_s() - t0) * 1000.0;
    if (!model) die("cannot load the model");
    return model;
}

// The same settings as host.llama.Context (n_ubatch = min(n_batch, 512), unified KV, perf on).
static struct llama_context * make_context(struct llama_model * model, int threads, int n_ctx, int n_batch, double * ms) {
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t) n_ctx;
    cp.n_batch = (uint32_t) n_batch;
    cp.n_ubatch = (uint32_t) (n_batch < 512 ? n_batch : 512);
    cp.n_seq_max = 1;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.kv_unified = true;
    cp.no_perf = false;
    double t0 = now_s();
    struct llama_context * ctx = llama_init_from_model(model, cp);
    *ms = (now_s() - t0) * 1000.0;
    if (!ctx) die("cannot create the context");
    return ctx;
}

static void print_rusage_fields(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("\"maxrss_kb\": %ld, \"minflt\": %ld, \"majflt\": %ld", ru.ru_maxrss, ru.ru_minflt, ru.ru_majflt);
}

static int cmd_gen(int argc, char ** argv) {
    if (argc != 8) die("usage: gen MODEL PROMPT_FILE N_GEN THREADS N_CTX N_BATCH");
    const int n_gen = atoi(argv[4]), threads = atoi(argv[5]), n_ctx = atoi(argv[6]), n_batch = atoi(argv[7]);
    size_t len;
    char * text = read_file(argv[3], &len);
    double load_ms, ctx_ms;
    struct llama_model * model = load_model(argv[2], &load_ms);
    const struct llama_vocab * vocab = llama_model_get_vocab(model);
    struct llama_context * ctx = make_context(model, threads, n_ctx, n_batch, &ctx_ms);
    int n_prompt;
    llama_token * prompt = tokenize(vocab, text, len, &n_prompt);
    if (n_prompt > n_batch || n_prompt + n_gen > n_ctx) die("prompt does not fit the batch/context");

    struct llama_batch batch = llama_batch_init(n_batch, 0, 1);
    for (int i = 0; i < n_prompt; i++) {
        batch.token[i] = prompt[i];
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = i == n_prompt - 1;
    }
    batch.n_tokens = n_prompt;
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);  // page faults are counted over the job: prompt + generation
    double t0 = now_s();
    if (llama_decode(ctx, batch) != 0) die("prompt decode failed");
    const double pp_s = now_s() - t0;

    struct llama_sampler_chain_params sp = llama_sampler_chain_default_params();
    sp.no_perf = true;
    struct llama_sampler * chain = llama_sampler_chain_init(sp);
    llama_sampler_chain_add(chain, llama_sampler_init_greedy());

    char * out = malloc((size_t) n_gen * 256 + 1);
    size_t out_len = 0;
    char piece[256];
    double decode_s = 0;  // time inside llama_decode; the rest of the loop is sampling and the piece
    t0 = now_s();
    for (int i = 0; i < n_gen; i++) {
        llama_token tok = llama_sampler_sample(chain, ctx, -1);
        int n = llama_token_to_piece(vocab, tok, piece, sizeof piece, 0, false);
        if (n > 0) {
            memcpy(out + out_len, piece, (size_t) n);
            out_len += (size_t) n;
        }
        batch.n_tokens = 1;
        batch.token[0] = tok;
        batch.pos[0] = n_prompt + i;
        batch.n_seq_id[0] = 1;
        batch.seq_id[0][0] = 0;
        batch.logits[0] = true;
        const double td = now_s();
        if (llama_decode(ctx, batch) != 0) die("decode failed");
        decode_s += now_s() - td;
    }
    const double tg_s = now_s() - t0;
    getrusage(RUSAGE_SELF, &ru1);

    printf("{\"n_prompt\": %d, \"n_gen\": %d, \"pp\": %.3f, \"tg\": %.3f, \"load_ms\": %.3f, \"ctx_ms\": %.3f, ",
           n_prompt, n_gen, n_prompt / pp_s, n_gen / tg_s, load_ms, ctx_ms);
    printf("\"outside_decode_us\": %.3f, \"decode_ms\": %.4f, ", (tg_s - decode_s) / n_gen * 1e6, decode_s / n_gen * 1e3);
    printf("\"job_faults\": %ld, ", (ru1.ru_minflt + ru1.ru_majflt) - (ru0.ru_minflt + ru0.ru_majflt));
    print_rusage_fields();
    printf(", \"text_hex\": \"");
    for (size_t i = 0; i < out_len; i++) printf("%02x", (unsigned char) out[i]);
    printf("\"}\n");

    free(out);
    free(prompt);
    free(text);
    llama_sampler_free(chain);
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}

// Runs `body` in growing rounds until at least `seconds` have passed; returns calls/s.
#define CALLS_PER_SECOND(result, seconds, body)                         \
    do {                                                                \
        long rounds_ = 1000, done_ = 0;                                 \
        double t0_ = now_s(), el_ = 0;                                  \
        while (el_ < (seconds)) {                                       \
            for (long r_ = 0; r_ < rounds_; r_++) { body; }             \
            done_ += rounds_;                                           \
            el_ = now_s() - t0_;                                        \
            rounds_ *= 2;                                               \
        }                                                               \
        (result) = done_ / el_;                                         \
    } while (0)

static int cmd_micro(int argc, char ** argv) {
    if (argc != 5) die("usage: micro MODEL TEXT_FILE SECONDS");
    const double seconds = atof(argv[4]);
    size_t len;
    char * text = read_file(argv[3], &len);
    double load_ms;
    struct llama_model * model = load_model(argv[2], &load_ms);
    const struct llama_vocab * vocab = llama_model_get_vocab(model);
    // the same inputs as the other contenders: tokens without BOS, the first 16 for detokenize
    int cap = (int) len + 8;
    llama_token * toks = malloc(sizeof(llama_token) * (size_t) cap);
    llama_token * tbuf = malloc(sizeof(llama_token) * (size_t) cap);
    int n_toks = llama_tokenize(vocab, text, (int32_t) len, toks, cap, false, false);
    if (n_toks <= 0) die("tokenize failed");
    const int n_detok = n_toks < 16 ? n_toks : 16;
    char buf[4096];
    long sink = 0;  // printed at the end; the calls go into a shared library, so none is optimized away
    long k = 0;
    double detok, piece, eog, tokz;
    CALLS_PER_SECOND(detok, seconds, sink += llama_detokenize(vocab, toks, n_detok, buf, sizeof buf, false, false));
    CALLS_PER_SECOND(piece, seconds,
                     sink += llama_token_to_piece(vocab, toks[k], buf, sizeof buf, 0, false); if (++k == n_toks) k = 0);
    CALLS_PER_SECOND(eog, seconds, sink += llama_vocab_is_eog(vocab, toks[k]); if (++k == n_toks) k = 0);
    CALLS_PER_SECOND(tokz, seconds, sink += llama_tokenize(vocab, text, (int32_t) len, tbuf, cap, false, false));
    printf("{\"detokenize\": %.1f, \"token_to_piece\": %.1f, \"is_eog\": %.1f, \"tokenize\": %.1f, "
           "\"n_tokens\": %d, \"detokenize_tokens\": %d, \"text_bytes\": %zu, \"sink\": %ld}\n",
           detok, piece, eog, tokz, n_toks, n_detok, len, (long) sink);
    free(tbuf);
    free(toks);
    free(text);
    llama_model_free(model);
    return 0;
}

static int cmd_load(int argc, char ** argv) {
    if (argc != 5) die("usage: load MODEL THREADS N_CTX");
    double load_ms, ctx_ms;
    struct llama_model * model = load_model(argv[2], &load_ms);
    struct llama_context * ctx = make_context(model, atoi(argv[3]), atoi(argv[4]), 512, &ctx_ms);
    printf("{\"load_ms\": %.3f, \"ctx_ms\": %.3f, ", load_ms, ctx_ms);
    print_rusage_fields();
    printf("}\n");
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}

int main(int argc, char ** argv) {
    double t0 = now_s();
    llama_log_set(quiet_log, NULL);
    llama_backend_init();
    const double init_ms = (now_s() - t0) * 1000.0;
    (void) init_ms;
    if (argc < 2) die("usage: relic-native gen|micro|load ...");
    int rc;
    if (strcmp(argv[1], "gen") == 0) {
        rc = cmd_gen(argc, argv);
    } else if (strcmp(argv[1], "micro") == 0) {
        rc = cmd_micro(argc, argv);
    } else if (strcmp(argv[1], "load") == 0) {
        rc = cmd_load(argc, argv);
    } else {
        die("unknown command (gen, micro, load)");
        rc = 2;
    }
    llama_backend_free();
    return rc;
}
