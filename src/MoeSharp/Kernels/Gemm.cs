using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MoeSharp.Kernels;

/// <summary>
/// Single-precision matrix multiply, C[m,n] = (accumulate ? C : 0) + op(A)[m,k] · op(B)[k,n], in the three layouts
/// backward needs (A·B, A·Bᵀ, Aᵀ·B), row-major.
/// </summary>
/// <remarks>
/// GotoBLAS/BLIS structure: B is packed into kc×NR panels and A into MR×kc micro-panels, so the register
/// micro-kernel streams both with unit stride. Work is split over output tiles only and every element sums its
/// k-blocks in the same order, so the result does not depend on the thread count.
/// Paths: Vector512 (8×32 tile), Vector256 (6×16), Vector128 (6×8), and the scalar <see cref="MultiplyReference"/>.
/// </remarks>
[System.Runtime.CompilerServices.SkipLocalsInit]
internal static unsafe class Gemm
{
    /// <summary>Depth of one packed block: a 256-deep B panel (32 KiB at NR=32) plus an A micro-panel fit in L1.</summary>
    private const int KC = 256;

    /// <summary>Columns of B packed per outer block; bounds the packed-B buffer.</summary>
    private const int NC = 4096;

    /// <summary>Most micro-panels of A one work item takes: MC = 16·MR rows, about 128 KiB of packed A, kept in L2.</summary>
    private const int MaxPanelsPerBlock = 16;

    /// <summary>Most B panels one work item takes.</summary>
    private const int MaxPanelsPerChunk = 4;

    /// <summary>
    /// Work items wanted per thread. Small outputs with a long k (weight gradients: [out,in] summed over every
    /// token) would otherwise be a single item, so blocks shrink until each thread has a few to take.
    /// </summary>
    private const int ItemsPerThread = 4;

    /// <summary>Which vector path the hardware selects: 512, 256, 128, or 0 for scalar.</summary>
    public static int VectorBits =>
        Vector512.IsHardwareAccelerated ? 512 :
        Vector256.IsHardwareAccelerated ? 256 :
        Vector128.IsHardwareAccelerated ? 128 : 0;

    /// <summary>
    /// C = (accumulate ? C : 0) + op(A)·op(B). Leading dimensions default to the dense row-major ones:
    /// A is [m,k] (or [k,m] when <paramref name="transA"/>), B is [k,n] (or [n,k] when <paramref name="transB"/>), C is [m,n].
    /// </summary>
    public static void Multiply(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k,
        bool transA = false, bool transB = false, bool accumulate = false, int lda = 0, int ldb = 0, int ldc = 0)
    {
        if (lda == 0) lda = transA ? m : k;
        if (ldb == 0) ldb = transB ? k : n;
        if (ldc == 0) ldc = n;
        Check(m, n, k, a.Length, transA ? k : m, transA ? m : k, lda, "A");
        Check(m, n, k, b.Length, transB ? n : k, transB ? k : n, ldb, "B");
        Check(m, n, k, c.Length, m, n, ldc, "C");
        fixed (float* pa = a, pb = b, pc = c)
            MultiplyCore(pa, lda, transA, pb, ldb, transB, pc, ldc, m, n, k, accumulate, parallel: true);
    }

    private static void Check(int m, int n, int k, int length, int rows, int cols, int ld, string name)
    {
        if (m < 0 || n < 0 || k < 0)
            throw new ArgumentException($"GEMM sizes must be non-negative, got m={m}, n={n}, k={k}.");
        if (rows == 0 || cols == 0) return;
        if (ld < cols)
            throw new ArgumentException($"GEMM {name}: leading dimension {ld} is smaller than its row length {cols}.");
        long need = (long)(rows - 1) * ld + cols;
        if (length < need)
            throw new ArgumentException($"GEMM {name}: [{rows},{cols}] with leading dimension {ld} needs {need} elements, got {length}.");
    }

    /// <summary>The scalar reference twin: the plain triple loop, used by tests and when no vector unit exists.</summary>
    public static void MultiplyReference(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k,
        bool transA = false, bool transB = false, bool accumulate = false, int lda = 0, int ldb = 0, int ldc = 0)
    {
        if (lda == 0) lda = transA ? m : k;
        if (ldb == 0) ldb = transB ? k : n;
        if (ldc == 0) ldc = n;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float s = 0;
                for (int p = 0; p < k; p++)
                    s += (transA ? a[p * lda + i] : a[i * lda + p]) * (transB ? b[j * ldb + p] : b[p * ldb + j]);
                c[i * ldc + j] = accumulate ? c[i * ldc + j] + s : s;
            }
    }

    /// <summary>
    /// Pointer entry point. With <paramref name="parallel"/> false it runs on the calling thread only, which lets
    /// callers that are already parallel (grouped expert GEMMs) use it from worker threads.
    /// </summary>
    internal static void MultiplyCore(float* a, int lda, bool transA, float* b, int ldb, bool transB, float* c, int ldc,
        int m, int n, int k, bool accumulate, bool parallel)
    {
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            if (!accumulate)
                for (int i = 0; i < m; i++) new Span<float>(c + (long)i * ldc, n).Clear();
            return;
        }
        int bits = VectorBits;
        if (m <= SmallRows && bits != 0)
        {
            // A row or two (generation through the KV cache): packing all of B up front would cost more than the multiply.
            var rows = new SmallRowsJob { A = a, Lda = lda, TransA = transA, B = b, Ldb = ldb, TransB = transB, C = c, Ldc = ldc, M = m, N = n, K = k, Bits = bits, Accumulate = accumulate };
            int chunks = (n + SmallChunk - 1) / SmallChunk;
            if (parallel && (long)m * n * k >= 1 << 20) Workers.For(chunks, rows);
            else for (int i = 0; i < chunks; i++) rows.Invoke(i);
            return;
        }
        if (bits == 0)
        {
            MultiplyReference(new ReadOnlySpan<float>(a, Extent(transA ? k : m, transA ? m : k, lda)),
                new ReadOnlySpan<float>(b, Extent(transB ? n : k, transB ? k : n, ldb)),
                new Span<float>(c, Extent(m, n, ldc)), m, n, k, transA, transB, accumulate, lda, ldb, ldc);
            return;
        }
        int mr = bits == 512 ? 8 : 6;
        int nr = bits == 512 ? 32 : bits == 256 ? 16 : 8;
        int mPanels = (m + mr - 1) / mr;
        int ncMax = Math.Min(NC, n);
        int nPanelsMax = (ncMax + nr - 1) / nr;
        var scratch = Scratch.Current;
        float* packA = scratch.A(mPanels * mr * KC);
        float* packB = scratch.B(nPanelsMax * nr * KC);

        for (int jc = 0; jc < n; jc += NC)
        {
            int nc = Math.Min(NC, n - jc);
            int nPanels = (nc + nr - 1) / nr;
            for (int pc = 0; pc < k; pc += KC)
            {
                int kc = Math.Min(KC, k - pc);
                var job = new Job
                {
                    A = a, Lda = lda, TransA = transA, B = b, Ldb = ldb, TransB = transB, C = c, Ldc = ldc,
                    M = m, Jc = jc, Nc = nc, Pc = pc, Kc = kc, Mr = mr, Nr = nr, Bits = bits,
                    First = pc == 0 && !accumulate, PackA = packA, PackB = packB,
                    MPanels = mPanels, NPanels = nPanels,
                };
                Split(ref job, parallel ? Workers.Threads : 1);
                if (parallel && Workers.Threads > 1 && (long)m * nc * kc >= 1 << 20)
                {
                    Workers.For(mPanels + nPanels, new PackStep(job));
                    Workers.For(job.MBlocks * job.NChunks, new ComputeStep(job));
                }
                else if (PrefetchB && Sse.IsSupported)
                {
                    // The block after this one, whose first B panel is prefetched while this block's last panel computes.
                    int nextPc = pc + KC < k ? pc + KC : 0, nextJc = pc + KC < k ? jc : jc + NC;
                    job.RunSerial(nextJc < n ? nextJc : -1, nextPc, Math.Min(KC, k - nextPc), Math.Min(NC, n - nextJc));
                }
                else
                {
                    for (int i = 0; i < mPanels + nPanels; i++) job.Pack(i);
                    for (int i = 0; i < job.MBlocks * job.NChunks; i++) job.Compute(i);
                }
            }
        }
    }

    /// <summary>
    /// Chooses block and chunk sizes: the largest (cache-friendly) ones that still give every thread
    /// <see cref="ItemsPerThread"/> items. Each C tile is still computed whole by one item, so results do not change.
    /// </summary>
    private static void Split(ref Job job, int threads)
    {
        int perBlock = MaxPanelsPerBlock, perChunk = MaxPanelsPerChunk, want = threads * ItemsPerThread;
        while (threads > 1 && Blocks(job.MPanels, perBlock) * Blocks(job.NPanels, perChunk) < want && (perBlock > 1 || perChunk > 1))
        {
            if (perBlock >= 2 * perChunk || perChunk == 1) perBlock = (perBlock + 1) / 2;
            else perChunk = (perChunk + 1) / 2;
        }
        job.PanelsPerBlock = perBlock;
        job.PanelsPerChunk = perChunk;
        job.MBlocks = Blocks(job.MPanels, perBlock);
        job.NChunks = Blocks(job.NPanels, perChunk);
    }

    private static int Blocks(int panels, int per) => (panels + per - 1) / per;

    /// <summary>
    /// On the calling-thread path, each B panel is packed just before its first use while the source of the next
    /// panel is prefetched, instead of packing all of B first (the A/B switch of `moe-ab --ab prefetch`). With many
    /// experts and few rows each, every expert's weights come cold from memory once per product, and packing a
    /// transposed panel reads 32 rows of only 1 KiB each, too short for the hardware prefetchers to follow: the
    /// packing waited on memory. Only the order of work changes; every tile is summed as before.
    /// </summary>
    internal static bool PrefetchB { get; set; } = true;

    /// <summary>At most this many rows of A take the unpacked path.</summary>
    private const int SmallRows = 2;

    /// <summary>Columns of C per work item on the unpacked path.</summary>
    private const int SmallChunk = 64;

    /// <summary>Row stride of the few-rows path's staged B rows: one k block plus 8 floats, so 16 rows fall in different L1 sets.</summary>
    private const int StageLd = KC + 8;

    /// <summary>
    /// The few-rows path over one chunk of columns: each B panel is used in place when its rows are contiguous and
    /// whole, else packed as the main path packs it, and every C element is summed exactly as the micro-kernels sum
    /// it (per 256-deep k block, k in order, the same fused multiply-add, blocks added in order), so a row's result
    /// is bitwise the same whatever M is and whatever the other rows hold.
    /// </summary>
    private struct SmallRowsJob : IWorkItem
    {
        public float* A, B, C;
        public int Lda, Ldb, Ldc, M, N, K, Bits;
        public bool TransA, TransB, Accumulate;

        public readonly void Invoke(int chunk)
        {
            int nr = Bits == 512 ? 32 : Bits == 256 ? 16 : 8;
            int jEnd = Math.Min(N, (chunk + 1) * SmallChunk);
            float* panel = Scratch.Current.B(nr * KC); // [KC, nr] packed B panel when B cannot be read in place
            float* tile = stackalloc float[2 * 32];    // [2, nr] for a ragged last panel
            int j0 = chunk * SmallChunk;
            if (TransB && Bits >= 256 && Avx.IsSupported)
            {
                // B's rows are the columns of C: transpose 8×8 blocks in registers instead of packing whole panels.
                float* stage = stackalloc float[16 * StageLd]; // [16, StageLd] rows of B for one k block
                for (; j0 < jEnd; j0 += 16) TransposedColumns(j0, Math.Min(16, jEnd - j0), stage);
                return;
            }
            for (; j0 < jEnd; j0 += nr)
            {
                int cols = Math.Min(nr, N - j0);
                bool direct = !TransB && cols == nr;
                for (int pc = 0; pc < K; pc += KC)
                {
                    int kc = Math.Min(KC, K - pc);
                    float* bp = panel;
                    int sb = nr;
                    if (direct) { bp = B + (long)pc * Ldb + j0; sb = Ldb; }
                    else PackBPanel(B, Ldb, TransB, j0, cols, pc, kc, nr, panel);
                    float* a0 = TransA ? A + (long)pc * Lda : A + pc;
                    int sa = TransA ? Lda : 1, rowStep = TransA ? 1 : Lda;
                    bool first = pc == 0 && !Accumulate;
                    float* cp = C + j0;
                    if (cols == nr)
                    {
                        RowKernel(a0, sa, rowStep, M, bp, sb, kc, cp, Ldc, first);
                    }
                    else
                    {
                        RowKernel(a0, sa, rowStep, M, bp, sb, kc, tile, nr, first: true);
                        for (int r = 0; r < M; r++)
                            for (int j = 0; j < cols; j++)
                                cp[(long)r * Ldc + j] = first ? tile[r * nr + j] : cp[(long)r * Ldc + j] + tile[r * nr + j];
                    }
                }
            }
        }

        /// <summary>
        /// Columns [j0, j0 + cols) of C, cols ≤ 16, for transposed B, per 256-deep k block like the micro-kernels,
        /// summed by <see cref="SumTransposed"/>. The block's B rows are copied into <paramref name="stage"/> first
        /// when they are a multiple of 2 KiB apart (common in real models: 16 such rows would crowd a few L1 sets)
        /// or fewer than 16·groups (the missing rows are zeroed, as the packed path pads them).
        /// </summary>
        private readonly void TransposedColumns(int j0, int cols, float* stage)
        {
            var acc = stackalloc Vector256<float>[2]; // [groups] 8 columns each
            int groups = (cols + 7) / 8;
            for (int pc = 0; pc < K; pc += KC)
            {
                int kc = Math.Min(KC, K - pc), fullK = kc / 8 * 8;
                bool first = pc == 0 && !Accumulate;
                float* b = B + (long)j0 * Ldb + pc;
                int ldb = Ldb;
                if (cols < 8 * groups || Ldb % 512 == 0)
                {
                    for (int j = 0; j < 8 * groups; j++)
                    {
                        var row = new Span<float>(stage + j * StageLd, kc);
                        if (j < cols) new ReadOnlySpan<float>(b + (long)j * Ldb, kc).CopyTo(row);
                        else row.Clear();
                    }
                    b = stage;
                    ldb = StageLd;
                }
                for (int r = 0; r < M; r++)
                {
                    float* a = TransA ? A + (long)pc * Lda + r : A + (long)r * Lda + pc;
                    int sa = TransA ? Lda : 1;
                    if (Bits == 512) SumTransposed<Fused>(a, sa, b, ldb, kc, fullK, groups, acc);
                    else SumTransposed<Estimate>(a, sa, b, ldb, kc, fullK, groups, acc);
                    float* c = C + (long)r * Ldc + j0;
                    if (cols == 8 * groups)
                    {
                        for (int g = 0; g < groups; g++) Put256(acc[g], c + 8 * g, first);
                    }
                    else
                    {
                        var sums = (float*)acc;
                        for (int j = 0; j < cols; j++) c[j] = first ? sums[j] : c[j] + sums[j];
                    }
                }
            }
        }

        /// <summary>
        /// C[r, 0..nr) (+)= Σ_kk a[r, kk]·b[kk, 0..nr) for the 1 or 2 rows, with the operation of the matching
        /// micro-kernel (Vector512 fused, narrower paths MultiplyAddEstimate) and two vectors per row as they have.
        /// </summary>
        private readonly void RowKernel(float* a, int sa, int rowStep, int rows, float* bp, int sb, int kc, float* c, int ldc, bool first)
        {
            for (int r = 0; r < rows; r++, a += rowStep, c += ldc)
            {
                if (Bits == 512)
                {
                    Vector512<float> c0 = default, c1 = default;
                    float* ak = a, bk = bp;
                    for (int kk = 0; kk < kc; kk++, ak += sa, bk += sb)
                    {
                        var av = Vector512.Create(*ak);
                        c0 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bk), c0);
                        c1 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bk + 16), c1);
                    }
                    Put512(c0, c, first); Put512(c1, c + 16, first);
                }
                else if (Bits == 256)
                {
                    Vector256<float> c0 = default, c1 = default;
                    float* ak = a, bk = bp;
                    for (int kk = 0; kk < kc; kk++, ak += sa, bk += sb)
                    {
                        var av = Vector256.Create(*ak);
                        c0 = Vector256.MultiplyAddEstimate(av, Vector256.Load(bk), c0);
                        c1 = Vector256.MultiplyAddEstimate(av, Vector256.Load(bk + 8), c1);
                    }
                    Put256(c0, c, first); Put256(c1, c + 8, first);
                }
                else
                {
                    Vector128<float> c0 = default, c1 = default;
                    float* ak = a, bk = bp;
                    for (int kk = 0; kk < kc; kk++, ak += sa, bk += sb)
                    {
                        var av = Vector128.Create(*ak);
                        c0 = Vector128.MultiplyAddEstimate(av, Vector128.Load(bk), c0);
                        c1 = Vector128.MultiplyAddEstimate(av, Vector128.Load(bk + 4), c1);
                    }
                    Put128(c0, c, first); Put128(c1, c + 4, first);
                }
            }
        }
    }

    /// <summary>The main path's multiply-add on 8 lanes: fused like Vector512's on the 512-bit path, else as Vector256's.</summary>
    private interface IMadd
    {
        static abstract Vector256<float> Invoke(Vector256<float> a, Vector256<float> b, Vector256<float> c);
    }

    private readonly struct Fused : IMadd
    {
        public static Vector256<float> Invoke(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.FusedMultiplyAdd(a, b, c);
    }

    private readonly struct Estimate : IMadd
    {
        public static Vector256<float> Invoke(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.MultiplyAddEstimate(a, b, c);
    }

    /// <summary>
    /// Σ_kk a[kk·sa]·b[j, kk] for the 8·<paramref name="groups"/> (1 or 2) rows j of <paramref name="b"/> (leading
    /// dimension <paramref name="ldb"/>), k in order, into acc[0..groups): 8×8 blocks are transposed in registers into
    /// one vector of 8 columns per k. Two groups give two independent FMA chains, enough to cover the FMA latency
    /// behind the shuffles; more rows at once would alias in L1 when rows are 4 KiB apart.
    /// </summary>
    private static void SumTransposed<TMadd>(float* a, int sa, float* b, int ldb, int kc, int fullK, int groups, Vector256<float>* acc)
        where TMadd : struct, IMadd
    {
        Vector256<float> c0 = default, c1 = default;
        long g8 = 8L * ldb;
        int kk = 0;
        for (; kk < fullK; kk += 8, a += 8 * sa)
        {
            Vector256<float> a0 = Vector256.Create(a[0]), a1 = Vector256.Create(a[sa]), a2 = Vector256.Create(a[2 * sa]), a3 = Vector256.Create(a[3 * sa]),
                a4 = Vector256.Create(a[4 * sa]), a5 = Vector256.Create(a[5 * sa]), a6 = Vector256.Create(a[6 * sa]), a7 = Vector256.Create(a[7 * sa]);
            c0 = Block<TMadd>(b + kk, ldb, a0, a1, a2, a3, a4, a5, a6, a7, c0);
            if (groups == 1) continue;
            c1 = Block<TMadd>(b + g8 + kk, ldb, a0, a1, a2, a3, a4, a5, a6, a7, c1);
        }
        for (; kk < kc; kk++, a += sa)
        {
            var av = Vector256.Create(*a);
            c0 = TMadd.Invoke(av, Column(b + kk, ldb), c0);
            if (groups == 1) continue;
            c1 = TMadd.Invoke(av, Column(b + g8 + kk, ldb), c1);
        }
        acc[0] = c0;
        if (groups == 1) return;
        acc[1] = c1;
    }

    /// <summary>b[0..8)·ldb, one k: a column of an 8-row block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Column(float* b, int ldb) =>
        Vector256.Create(b[0], b[ldb], b[2L * ldb], b[3L * ldb], b[4L * ldb], b[5L * ldb], b[6L * ldb], b[7L * ldb]);

    /// <summary>
    /// acc + Σ_q a_q·(column q of the 8×8 block at <paramref name="s"/>), q in order: the block is transposed with the
    /// shuffles of <see cref="Transpose8x8"/>, each column used as soon as it is formed.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Block<TMadd>(float* s, int lds, Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3,
        Vector256<float> a4, Vector256<float> a5, Vector256<float> a6, Vector256<float> a7, Vector256<float> acc) where TMadd : struct, IMadd
    {
        var r0 = Avx.LoadVector256(s); var r1 = Avx.LoadVector256(s + lds);
        var r2 = Avx.LoadVector256(s + 2 * lds); var r3 = Avx.LoadVector256(s + 3 * lds);
        var r4 = Avx.LoadVector256(s + 4 * lds); var r5 = Avx.LoadVector256(s + 5 * lds);
        var r6 = Avx.LoadVector256(s + 6 * lds); var r7 = Avx.LoadVector256(s + 7 * lds);
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        acc = TMadd.Invoke(a0, Avx.Permute2x128(u0, u4, 0x20), acc);
        acc = TMadd.Invoke(a1, Avx.Permute2x128(u1, u5, 0x20), acc);
        acc = TMadd.Invoke(a2, Avx.Permute2x128(u2, u6, 0x20), acc);
        acc = TMadd.Invoke(a3, Avx.Permute2x128(u3, u7, 0x20), acc);
        acc = TMadd.Invoke(a4, Avx.Permute2x128(u0, u4, 0x31), acc);
        acc = TMadd.Invoke(a5, Avx.Permute2x128(u1, u5, 0x31), acc);
        acc = TMadd.Invoke(a6, Avx.Permute2x128(u2, u6, 0x31), acc);
        return TMadd.Invoke(a7, Avx.Permute2x128(u3, u7, 0x31), acc);
    }

    /// <summary>
    /// Packs columns [j0, j0 + cols) of op(B) over k rows [pc, pc + kc) into <paramref name="dst"/> [kc, nr],
    /// zero-padded past the last column.
    /// </summary>
    private static void PackBPanel(float* b, int ldb, bool transB, int j0, int cols, int pc, int kc, int nr, float* dst)
    {
        if (transB)
        {
            // Whole 8×8 blocks go through a register transpose; the ragged edges element by element.
            int fullRows = Avx.IsSupported ? cols / 8 * 8 : 0, fullK = kc / 8 * 8;
            for (int jb = 0; jb < fullRows; jb += 8)
                for (int kb = 0; kb < fullK; kb += 8)
                    Transpose8x8(b + (long)(j0 + jb) * ldb + pc + kb, ldb, dst + kb * nr + jb, nr);
            for (int kk = 0; kk < kc; kk++)
            {
                float* d = dst + kk * nr;
                for (int jj = kk < fullK ? fullRows : 0; jj < nr; jj++)
                    d[jj] = jj < cols ? b[(long)(j0 + jj) * ldb + pc + kk] : 0;
            }
        }
        else if (cols == nr && Vector256.IsHardwareAccelerated)
        {
            // nr is a multiple of 8: whole vectors, no copy call per 32-float row piece.
            float* src = b + (long)pc * ldb + j0;
            for (int kk = 0; kk < kc; kk++, src += ldb, dst += nr)
                for (int j = 0; j < nr; j += 8) Vector256.Load(src + j).Store(dst + j);
        }
        else
        {
            for (int kk = 0; kk < kc; kk++)
            {
                var src = new ReadOnlySpan<float>(b + (long)(pc + kk) * ldb + j0, cols);
                var d = new Span<float>(dst + kk * nr, nr);
                src.CopyTo(d);
                d[cols..].Clear();
            }
        }
    }

    /// <summary>
    /// Prefetches slice <paramref name="part"/> of <paramref name="parts"/> of the source rows that
    /// <see cref="PackBPanel"/> reads for columns [j0, j0 + cols) and k rows [pc, pc + kc): every cache line of each row,
    /// into L2 (T1), since L1 holds the packed panels in use.
    /// </summary>
    private static void PrefetchPanel(float* b, int ldb, bool transB, int j0, int cols, int pc, int kc, int part, int parts)
    {
        // Source rows: the panel's columns when B is transposed (kc floats each), else its k rows (cols floats each).
        int rows = transB ? cols : kc, length = transB ? kc : cols;
        int r0 = (int)((long)rows * part / parts), r1 = (int)((long)rows * (part + 1) / parts);
        for (int r = r0; r < r1; r++)
        {
            byte* row = transB ? (byte*)(b + (long)(j0 + r) * ldb + pc) : (byte*)(b + (long)(pc + r) * ldb + j0);
            byte* end = row + ((long)length - 1) * sizeof(float);
            // Lines are 64 bytes: one touch per line start, and the last element's line, which may start past the last touch.
            for (byte* at = row; at < end; at += 64) Sse.Prefetch1(at);
            Sse.Prefetch1(end);
        }
    }

    private static int Extent(int rows, int cols, int ld) => rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols;

    private readonly struct PackStep(Job job) : IWorkItem
    {
        public void Invoke(int index) => job.Pack(index);
    }

    private readonly struct ComputeStep(Job job) : IWorkItem
    {
        public void Invoke(int index) => job.Compute(index);
    }

    /// <summary>One (jc, pc) block of the multiply: packing and tile computation, indexed for the worker loop.</summary>
    private struct Job
    {
        public float* A, B, C, PackA, PackB;
        public int Lda, Ldb, Ldc, M, Jc, Nc, Pc, Kc, Mr, Nr, Bits, MPanels, NPanels, MBlocks, NChunks, PanelsPerBlock, PanelsPerChunk;
        public bool TransA, TransB, First;

        /// <summary>Items [0, MPanels) pack A micro-panels; the rest pack B panels.</summary>
        public readonly void Pack(int index)
        {
            if (index < MPanels) PackAPanel(index);
            else PackBPanel(index - MPanels);
        }

        private readonly void PackAPanel(int p)
        {
            // packed A micro-panel: [Kc, Mr], so the kernel reads Mr consecutive row values per k step
            float* dst = PackA + (long)p * Mr * KC;
            int i0 = p * Mr, rows = Math.Min(Mr, M - i0);
            if (TransA && rows == 8 && Mr == 8 && Vector256.IsHardwareAccelerated)
            {
                // The panel's 8 values per k are contiguous in Aᵀ: one vector each.
                float* src = A + (long)Pc * Lda + i0;
                for (int kk = 0; kk < Kc; kk++, src += Lda) Vector256.Load(src).Store(dst + kk * 8);
            }
            else if (TransA)
            {
                for (int kk = 0; kk < Kc; kk++)
                {
                    float* src = A + (long)(Pc + kk) * Lda + i0;
                    float* d = dst + kk * Mr;
                    int r = 0;
                    for (; r < rows; r++) d[r] = src[r];
                    for (; r < Mr; r++) d[r] = 0;
                }
            }
            else
            {
                // A full 8-row panel is 8×8 register transposes; otherwise walk k outermost so the panel is written
                // sequentially while the Mr source rows are read as Mr streams.
                int fullK = Avx.IsSupported && Mr == 8 && rows == 8 ? Kc / 8 * 8 : 0;
                for (int kb = 0; kb < fullK; kb += 8)
                    Transpose8x8(A + (long)i0 * Lda + Pc + kb, Lda, dst + kb * 8, 8);
                var src = stackalloc float*[8];
                for (int r = 0; r < Mr; r++) src[r] = A + (long)(i0 + Math.Min(r, rows - 1)) * Lda + Pc;
                for (int kk = fullK; kk < Kc; kk++)
                {
                    float* d = dst + kk * Mr;
                    int r = 0;
                    for (; r < rows; r++) d[r] = src[r][kk];
                    for (; r < Mr; r++) d[r] = 0;
                }
            }
        }

        private readonly void PackBPanel(int q)
        {
            // packed B panel: [Kc, Nr], zero-padded past the last column
            int j0 = Jc + q * Nr;
            Gemm.PackBPanel(B, Ldb, TransB, j0, Math.Min(Nr, Jc + Nc - j0), Pc, Kc, Nr, PackB + (long)q * Nr * KC);
        }

        /// <summary>Computes the C tile of one (A block, B chunk) pair.</summary>
        public readonly void Compute(int index)
        {
            int mb = index % MBlocks, nb = index / MBlocks;
            int pEnd = Math.Min(MPanels, (mb + 1) * PanelsPerBlock);
            int qEnd = Math.Min(NPanels, (nb + 1) * PanelsPerChunk);
            float* tile = stackalloc float[8 * 32]; // [Mr, Nr] for ragged edges
            for (int q = nb * PanelsPerChunk; q < qEnd; q++)
                for (int p = mb * PanelsPerBlock; p < pEnd; p++) Tile(p, q, tile);
        }

        /// <summary>
        /// The whole block on the calling thread, in <see cref="Compute"/>'s item order: A packed first, each B panel
        /// packed at its first use, and while it meets the first A block the next panel's source (or the first panel of
        /// the block at (<paramref name="nextJc"/>, <paramref name="nextPc"/>), none when <paramref name="nextJc"/> is −1)
        /// is prefetched a slice per tile, so its memory reads overlap arithmetic.
        /// </summary>
        public readonly void RunSerial(int nextJc, int nextPc, int nextKc, int nextNc)
        {
            for (int p = 0; p < MPanels; p++) PackAPanel(p);
            float* tile = stackalloc float[8 * 32]; // [Mr, Nr] for ragged edges
            for (int q0 = 0; q0 < NPanels; q0 += PanelsPerChunk)
            {
                int qEnd = Math.Min(NPanels, q0 + PanelsPerChunk);
                for (int mb = 0; mb < MBlocks; mb++)
                {
                    int p0 = mb * PanelsPerBlock, pEnd = Math.Min(MPanels, p0 + PanelsPerBlock);
                    for (int q = q0; q < qEnd; q++)
                    {
                        if (mb == 0) PackBPanel(q);
                        for (int p = p0; p < pEnd; p++)
                        {
                            Tile(p, q, tile);
                            if (mb != 0) continue;
                            if (q + 1 < NPanels) PrefetchPanel(B, Ldb, TransB, Jc + (q + 1) * Nr, Math.Min(Nr, Nc - (q + 1) * Nr), Pc, Kc, p - p0, pEnd - p0);
                            else if (nextJc >= 0) PrefetchPanel(B, Ldb, TransB, nextJc, Math.Min(Nr, nextNc), nextPc, nextKc, p - p0, pEnd - p0);
                        }
                    }
                }
            }
        }

        private readonly void Tile(int p, int q, float* tile)
        {
            float* bp = PackB + (long)q * Nr * KC;
            int j0 = Jc + q * Nr, cols = Math.Min(Nr, Jc + Nc - j0);
            float* ap = PackA + (long)p * Mr * KC;
            int i0 = p * Mr, rows = Math.Min(Mr, M - i0);
            float* cp = C + (long)i0 * Ldc + j0;
            if (rows == Mr && cols == Nr)
            {
                Kernel(ap, bp, cp, Ldc, First);
            }
            else
            {
                Kernel(ap, bp, tile, Nr, first: true);
                for (int r = 0; r < rows; r++)
                    for (int j = 0; j < cols; j++)
                        cp[(long)r * Ldc + j] = First ? tile[r * Nr + j] : cp[(long)r * Ldc + j] + tile[r * Nr + j];
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly void Kernel(float* ap, float* bp, float* c, int ldc, bool first)
        {
            if (Bits == 512) Kernel8x32(ap, bp, Kc, c, ldc, first);
            else if (Bits == 256) Kernel6x16(ap, bp, Kc, c, ldc, first);
            else Kernel6x8(ap, bp, Kc, c, ldc, first);
        }
    }

    /// <summary>
    /// dst[k, r] = src[r, k] for an 8×8 block: unpack pairs, shuffle quads, swap 128-bit halves — the standard
    /// AVX transpose, 24 shuffles for 64 elements instead of 64 scattered scalar moves.
    /// </summary>
    internal static void Transpose8x8(float* src, int lds, float* dst, int ldd)
    {
        var r0 = Avx.LoadVector256(src); var r1 = Avx.LoadVector256(src + lds);
        var r2 = Avx.LoadVector256(src + 2 * lds); var r3 = Avx.LoadVector256(src + 3 * lds);
        var r4 = Avx.LoadVector256(src + 4 * lds); var r5 = Avx.LoadVector256(src + 5 * lds);
        var r6 = Avx.LoadVector256(src + 6 * lds); var r7 = Avx.LoadVector256(src + 7 * lds);
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + ldd, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + 2 * ldd, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + 3 * ldd, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + 4 * ldd, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + 5 * ldd, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + 6 * ldd, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + 7 * ldd, Avx.Permute2x128(u3, u7, 0x31));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put512(Vector512<float> v, float* p, bool first)
    {
        if (!first) v += Vector512.Load(p);
        v.Store(p);
    }

    /// <summary>8×32 tile: 16 zmm accumulators, two B vectors and one broadcast live, out of 32 registers.</summary>
    internal static void Kernel8x32(float* ap, float* bp, int kc, float* c, int ldc, bool first)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default,
            c60 = default, c61 = default, c70 = default, c71 = default;
        for (int kk = 0; kk < kc; kk++, ap += 8, bp += 32)
        {
            var b0 = Vector512.Load(bp);
            var b1 = Vector512.Load(bp + 16);
            var a = Vector512.Create(ap[0]);
            c00 = Vector512.FusedMultiplyAdd(a, b0, c00); c01 = Vector512.FusedMultiplyAdd(a, b1, c01);
            a = Vector512.Create(ap[1]);
            c10 = Vector512.FusedMultiplyAdd(a, b0, c10); c11 = Vector512.FusedMultiplyAdd(a, b1, c11);
            a = Vector512.Create(ap[2]);
            c20 = Vector512.FusedMultiplyAdd(a, b0, c20); c21 = Vector512.FusedMultiplyAdd(a, b1, c21);
            a = Vector512.Create(ap[3]);
            c30 = Vector512.FusedMultiplyAdd(a, b0, c30); c31 = Vector512.FusedMultiplyAdd(a, b1, c31);
            a = Vector512.Create(ap[4]);
            c40 = Vector512.FusedMultiplyAdd(a, b0, c40); c41 = Vector512.FusedMultiplyAdd(a, b1, c41);
            a = Vector512.Create(ap[5]);
            c50 = Vector512.FusedMultiplyAdd(a, b0, c50); c51 = Vector512.FusedMultiplyAdd(a, b1, c51);
            a = Vector512.Create(ap[6]);
            c60 = Vector512.FusedMultiplyAdd(a, b0, c60); c61 = Vector512.FusedMultiplyAdd(a, b1, c61);
            a = Vector512.Create(ap[7]);
            c70 = Vector512.FusedMultiplyAdd(a, b0, c70); c71 = Vector512.FusedMultiplyAdd(a, b1, c71);
        }
        Put512(c00, c, first); Put512(c01, c + 16, first); c += ldc;
        Put512(c10, c, first); Put512(c11, c + 16, first); c += ldc;
        Put512(c20, c, first); Put512(c21, c + 16, first); c += ldc;
        Put512(c30, c, first); Put512(c31, c + 16, first); c += ldc;
        Put512(c40, c, first); Put512(c41, c + 16, first); c += ldc;
        Put512(c50, c, first); Put512(c51, c + 16, first); c += ldc;
        Put512(c60, c, first); Put512(c61, c + 16, first); c += ldc;
        Put512(c70, c, first); Put512(c71, c + 16, first);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put256(Vector256<float> v, float* p, bool first)
    {
        if (!first) v += Vector256.Load(p);
        v.Store(p);
    }

    /// <summary>6×16 tile: 12 ymm accumulators plus two B vectors and a broadcast fit AVX2's 16 registers.</summary>
    private static void Kernel6x16(float* ap, float* bp, int kc, float* c, int ldc, bool first)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int kk = 0; kk < kc; kk++, ap += 6, bp += 16)
        {
            var b0 = Vector256.Load(bp);
            var b1 = Vector256.Load(bp + 8);
            var a = Vector256.Create(ap[0]);
            c00 = Vector256.MultiplyAddEstimate(a, b0, c00); c01 = Vector256.MultiplyAddEstimate(a, b1, c01);
            a = Vector256.Create(ap[1]);
            c10 = Vector256.MultiplyAddEstimate(a, b0, c10); c11 = Vector256.MultiplyAddEstimate(a, b1, c11);
            a = Vector256.Create(ap[2]);
            c20 = Vector256.MultiplyAddEstimate(a, b0, c20); c21 = Vector256.MultiplyAddEstimate(a, b1, c21);
            a = Vector256.Create(ap[3]);
            c30 = Vector256.MultiplyAddEstimate(a, b0, c30); c31 = Vector256.MultiplyAddEstimate(a, b1, c31);
            a = Vector256.Create(ap[4]);
            c40 = Vector256.MultiplyAddEstimate(a, b0, c40); c41 = Vector256.MultiplyAddEstimate(a, b1, c41);
            a = Vector256.Create(ap[5]);
            c50 = Vector256.MultiplyAddEstimate(a, b0, c50); c51 = Vector256.MultiplyAddEstimate(a, b1, c51);
        }
        Put256(c00, c, first); Put256(c01, c + 8, first); c += ldc;
        Put256(c10, c, first); Put256(c11, c + 8, first); c += ldc;
        Put256(c20, c, first); Put256(c21, c + 8, first); c += ldc;
        Put256(c30, c, first); Put256(c31, c + 8, first); c += ldc;
        Put256(c40, c, first); Put256(c41, c + 8, first); c += ldc;
        Put256(c50, c, first); Put256(c51, c + 8, first);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put128(Vector128<float> v, float* p, bool first)
    {
        if (!first) v += Vector128.Load(p);
        v.Store(p);
    }

    /// <summary>6×8 tile on 128-bit vectors: 12 accumulators out of 16 xmm registers.</summary>
    private static void Kernel6x8(float* ap, float* bp, int kc, float* c, int ldc, bool first)
    {
        Vector128<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int kk = 0; kk < kc; kk++, ap += 6, bp += 8)
        {
            var b0 = Vector128.Load(bp);
            var b1 = Vector128.Load(bp + 4);
            var a = Vector128.Create(ap[0]);
            c00 = Vector128.MultiplyAddEstimate(a, b0, c00); c01 = Vector128.MultiplyAddEstimate(a, b1, c01);
            a = Vector128.Create(ap[1]);
            c10 = Vector128.MultiplyAddEstimate(a, b0, c10); c11 = Vector128.MultiplyAddEstimate(a, b1, c11);
            a = Vector128.Create(ap[2]);
            c20 = Vector128.MultiplyAddEstimate(a, b0, c20); c21 = Vector128.MultiplyAddEstimate(a, b1, c21);
            a = Vector128.Create(ap[3]);
            c30 = Vector128.MultiplyAddEstimate(a, b0, c30); c31 = Vector128.MultiplyAddEstimate(a, b1, c31);
            a = Vector128.Create(ap[4]);
            c40 = Vector128.MultiplyAddEstimate(a, b0, c40); c41 = Vector128.MultiplyAddEstimate(a, b1, c41);
            a = Vector128.Create(ap[5]);
            c50 = Vector128.MultiplyAddEstimate(a, b0, c50); c51 = Vector128.MultiplyAddEstimate(a, b1, c51);
        }
        Put128(c00, c, first); Put128(c01, c + 4, first); c += ldc;
        Put128(c10, c, first); Put128(c11, c + 4, first); c += ldc;
        Put128(c20, c, first); Put128(c21, c + 4, first); c += ldc;
        Put128(c30, c, first); Put128(c31, c + 4, first); c += ldc;
        Put128(c40, c, first); Put128(c41, c + 4, first); c += ldc;
        Put128(c50, c, first); Put128(c51, c + 4, first);
    }

    /// <summary>
    /// Packing buffers, pinned and reused, one pair per calling thread: the caller owns them while its workers
    /// read them, and a worker that runs a serial multiply of its own uses its own pair.
    /// </summary>
    private sealed class Scratch
    {
        [ThreadStatic] private static Scratch? t_local;
        private float[] _a = [], _b = [];

        public static Scratch Current => t_local ??= new Scratch();

        public float* A(int length) => Grow(ref _a, length);
        public float* B(int length) => Grow(ref _b, length);

        private static float* Grow(ref float[] buffer, int length)
        {
            if (buffer.Length < length) buffer = GC.AllocateUninitializedArray<float>(length, pinned: true);
            return (float*)Unsafe.AsPointer(ref buffer[0]);
        }
    }
}
