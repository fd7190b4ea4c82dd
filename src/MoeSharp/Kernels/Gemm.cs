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
            // A row or two (generation through the KV cache): packing all of B would cost more than the multiply.
            var rows = new SmallRowsJob { A = a, Lda = lda, TransA = transA, B = b, Ldb = ldb, TransB = transB, C = c, Ldc = ldc, M = m, N = n, K = k, Accumulate = accumulate };
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

    /// <summary>At most this many rows of A take the unpacked path.</summary>
    private const int SmallRows = 2;

    /// <summary>Columns of C per work item on the unpacked path.</summary>
    private const int SmallChunk = 64;

    /// <summary>
    /// C rows as dot products (B transposed: each C element is one contiguous dot product) or as scaled row sums
    /// (B not transposed), over a chunk of columns; each element is summed in k order by one thread.
    /// </summary>
    private struct SmallRowsJob : IWorkItem
    {
        public float* A, B, C;
        public int Lda, Ldb, Ldc, M, N, K;
        public bool TransA, TransB, Accumulate;

        public readonly void Invoke(int chunk)
        {
            int j0 = chunk * SmallChunk, cols = Math.Min(SmallChunk, N - j0);
            float[]? rented = null;
            for (int i = 0; i < M; i++)
            {
                // Row i of op(A), made contiguous when A is transposed.
                ReadOnlySpan<float> ai;
                if (!TransA) ai = new ReadOnlySpan<float>(A + (long)i * Lda, K);
                else
                {
                    rented ??= System.Buffers.ArrayPool<float>.Shared.Rent(K);
                    for (int p = 0; p < K; p++) rented[p] = A[(long)p * Lda + i];
                    ai = rented.AsSpan(0, K);
                }
                var ci = new Span<float>(C + (long)i * Ldc + j0, cols);
                if (!Accumulate) ci.Clear();
                if (TransB)
                {
                    for (int j = 0; j < cols; j++) ci[j] += TensorPrimitives.Dot(ai, new ReadOnlySpan<float>(B + (long)(j0 + j) * Ldb, K));
                }
                else
                {
                    for (int p = 0; p < K; p++)
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(B + (long)p * Ldb + j0, cols), ai[p], ci, ci);
                }
            }
            if (rented is not null) System.Buffers.ArrayPool<float>.Shared.Return(rented);
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
            if (TransA)
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
            float* dst = PackB + (long)q * Nr * KC;
            int j0 = Jc + q * Nr, cols = Math.Min(Nr, Jc + Nc - j0);
            if (TransB)
            {
                // Whole 8×8 blocks go through a register transpose; the ragged edges element by element.
                int fullRows = Avx.IsSupported ? cols / 8 * 8 : 0, fullK = Kc / 8 * 8;
                for (int jb = 0; jb < fullRows; jb += 8)
                    for (int kb = 0; kb < fullK; kb += 8)
                        Transpose8x8(B + (long)(j0 + jb) * Ldb + Pc + kb, Ldb, dst + kb * Nr + jb, Nr);
                for (int kk = 0; kk < Kc; kk++)
                {
                    float* d = dst + kk * Nr;
                    for (int jj = kk < fullK ? fullRows : 0; jj < Nr; jj++)
                        d[jj] = jj < cols ? B[(long)(j0 + jj) * Ldb + Pc + kk] : 0;
                }
            }
            else
            {
                for (int kk = 0; kk < Kc; kk++)
                {
                    var src = new ReadOnlySpan<float>(B + (long)(Pc + kk) * Ldb + j0, cols);
                    var d = new Span<float>(dst + kk * Nr, Nr);
                    src.CopyTo(d);
                    d[cols..].Clear();
                }
            }
        }

        /// <summary>Computes the C tile of one (A block, B chunk) pair.</summary>
        public readonly void Compute(int index)
        {
            int mb = index % MBlocks, nb = index / MBlocks;
            int pEnd = Math.Min(MPanels, (mb + 1) * PanelsPerBlock);
            int qEnd = Math.Min(NPanels, (nb + 1) * PanelsPerChunk);
            float* tile = stackalloc float[8 * 32]; // [Mr, Nr] for ragged edges
            for (int q = nb * PanelsPerChunk; q < qEnd; q++)
            {
                float* bp = PackB + (long)q * Nr * KC;
                int j0 = Jc + q * Nr, cols = Math.Min(Nr, Jc + Nc - j0);
                for (int p = mb * PanelsPerBlock; p < pEnd; p++)
                {
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
    private static void Transpose8x8(float* src, int lds, float* dst, int ldd)
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
    private static void Kernel8x32(float* ap, float* bp, int kc, float* c, int ldc, bool first)
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
