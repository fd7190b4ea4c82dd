// Read bandwidth of this machine: each of T threads sums its share of a 1 GiB buffer with 8 independent AVX
// accumulators (so the loop is bound by memory, not by add latency); best of 5 passes. Prints a bench line:
//   membw THREADS  ->  membw impl=machine threads=T read_gbs=X
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BYTES (1UL << 30)
static float *buf;
static int nthreads;
static float sink[64];

static void *reader(void *arg) {
    long id = (long)arg, n = BYTES / sizeof(float) / nthreads;
    const float *p = buf + id * n;
    __m256 s[8];
    for (int k = 0; k < 8; k++) s[k] = _mm256_setzero_ps();
    for (long i = 0; i + 64 <= n; i += 64)
        for (int k = 0; k < 8; k++) s[k] = _mm256_add_ps(s[k], _mm256_loadu_ps(p + i + 8 * k));
    for (int k = 1; k < 8; k++) s[0] = _mm256_add_ps(s[0], s[k]);
    sink[id] = s[0][0];
    return NULL;
}

int main(int argc, char **argv) {
    nthreads = argc > 1 ? atoi(argv[1]) : 1;
    if (nthreads < 1 || nthreads > 64) { fprintf(stderr, "membw: THREADS must be 1..64, got %s\n", argv[1]); return 2; }
    buf = aligned_alloc(64, BYTES);
    for (size_t i = 0; i < BYTES / sizeof(float); i++) buf[i] = 1.0f;
    double best = 1e9;
    for (int pass = 0; pass < 5; pass++) {
        struct timespec a, b;
        pthread_t th[64];
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (long t = 0; t < nthreads; t++) pthread_create(&th[t], NULL, reader, (void *)t);
        for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9;
        if (s < best) best = s;
    }
    printf("membw impl=machine threads=%d read_gbs=%.2f\n", nthreads, BYTES / best / 1e9);
    return sink[0] == 12345.0f;
}
