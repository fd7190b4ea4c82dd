using MoeSharp.Kernels;

namespace MoeSharp.Tests.Kernels;

[Trait("Category", "Kernel")]
public class GemmTests
{
    /// <summary>
    /// Each element is compared against the scalar twin with a bound proportional to Σ|a·b| over k: a different
    /// summation order in float32 moves the result by a few ulps of that sum (2e-6 covers k up to ~600 with margin).
    /// </summary>
    private static void CheckAgainstTwin(int m, int n, int k, bool ta, bool tb, bool accumulate, int pad = 0)
    {
        int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
        var a = Numerics.Random(Math.Max(0, (ta ? k : m) * lda), 1);
        var b = Numerics.Random(Math.Max(0, (tb ? n : k) * ldb), 2);
        var c0 = Numerics.Random(m * ldc, 3);
        var fast = (float[])c0.Clone();
        var twin = (float[])c0.Clone();
        Gemm.Multiply(a, b, fast, m, n, k, ta, tb, accumulate, lda, ldb, ldc);
        Gemm.MultiplyReference(a, b, twin, m, n, k, ta, tb, accumulate, lda, ldb, ldc);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double mag = accumulate ? Math.Abs(c0[i * ldc + j]) : 0;
                for (int p = 0; p < k; p++)
                    mag += Math.Abs((ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]));
                double err = Math.Abs(fast[i * ldc + j] - twin[i * ldc + j]);
                if (err > 2e-6 * mag + 1e-30)
                    Assert.Fail($"m={m} n={n} k={k} ta={ta} tb={tb} acc={accumulate}: C[{i},{j}] fast {fast[i * ldc + j]:R} twin {twin[i * ldc + j]:R}, |diff| {err:G3} > 2e-6·{mag:G3}");
            }
        // Padding columns beyond n are never written.
        for (int i = 0; i < m; i++)
            for (int j = n; j < ldc; j++)
                Assert.Equal(c0[i * ldc + j], fast[i * ldc + j]);
    }

    public static TheoryData<int, int, int> OddShapes()
    {
        var data = new TheoryData<int, int, int>();
        int[] sizes = [0, 1, 5, 8, 17, 33, 70];
        foreach (int m in sizes) foreach (int n in sizes) foreach (int k in new[] { 0, 1, 9, 64 }) data.Add(m, n, k);
        return data;
    }

    [Theory]
    [MemberData(nameof(OddShapes))]
    public void AllLayoutsMatchTwinOnOddShapes(int m, int n, int k)
    {
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
                CheckAgainstTwin(m, n, k, ta, tb, accumulate: false);
    }

    [Theory]
    [InlineData(97, 131, 300)]   // k spans two 256-deep blocks
    [InlineData(130, 65, 513)]   // three k blocks, ragged micro-tiles on both edges
    [InlineData(256, 96, 256)]   // exact multiples of every tile
    [InlineData(3, 4100, 5)]     // more columns than one packed-B block (4096)
    public void LargeShapesMatchTwin(int m, int n, int k)
    {
        CheckAgainstTwin(m, n, k, false, false, false);
        CheckAgainstTwin(m, n, k, false, true, true);
        CheckAgainstTwin(m, n, k, true, false, true);
    }

    [Fact]
    public void AccumulateAndLeadingDimensionsMatchTwin()
    {
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
                CheckAgainstTwin(37, 45, 29, ta, tb, accumulate: true, pad: 3);
    }

    [Fact]
    public void HandComputedProduct()
    {
        // [1 2; 3 4]·[5 6; 7 8] = [19 22; 43 50]
        float[] a = [1, 2, 3, 4], b = [5, 6, 7, 8], c = new float[4];
        Gemm.Multiply(a, b, c, 2, 2, 2);
        Assert.Equal([19f, 22f, 43f, 50f], c);
        Gemm.Multiply(a, b, c, 2, 2, 2, transA: true); // Aᵀ = [1 3; 2 4]
        Assert.Equal([26f, 30f, 38f, 44f], c);
        Gemm.Multiply(a, b, c, 2, 2, 2, transB: true, accumulate: true); // += A·Bᵀ = [17 23; 39 53]
        Assert.Equal([43f, 53f, 77f, 97f], c);
    }

    [Fact]
    public void ZeroDepthClearsOrKeeps()
    {
        var c = new float[] { 1, 2, 3, 4 };
        Gemm.Multiply([], [], c, 2, 2, 0, accumulate: true);
        Assert.Equal([1f, 2f, 3f, 4f], c);
        Gemm.Multiply([], [], c, 2, 2, 0);
        Assert.Equal([0f, 0f, 0f, 0f], c);
    }

    [Fact]
    public void ShortBufferNamesTheOperand()
    {
        var ex = Assert.Throws<ArgumentException>(() => Gemm.Multiply(new float[5], new float[6], new float[4], 2, 2, 3));
        Assert.Contains("GEMM A", ex.Message);
    }

    [Fact]
    public void OneThreadAndTwoThreadsAgreeBitwise()
    {
        int m = 300, n = 200, k = 600;
        var a = Numerics.Random(m * k, 4);
        var b = Numerics.Random(k * n, 5);
        var c1 = new float[m * n];
        var c2 = new float[m * n];
        using (Workers.Limit(1)) Gemm.Multiply(a, b, c1, m, n, k);
        using (Workers.Limit(2)) Gemm.Multiply(a, b, c2, m, n, k);
        Numerics.BitwiseEqual(c1, c2, "GEMM 1 vs 2 threads");
    }

    /// <summary>
    /// The calling-thread path packs each B panel at its first use and prefetches the next one's source; it must
    /// agree bitwise with packing all of B first and with the two-thread path, since only the order of work
    /// differs. Every layout, with and without accumulation, over two and three 256-deep k blocks, ragged tiles, and
    /// more columns than one packed-B block (4096).
    /// </summary>
    [Theory]
    [InlineData(64, 1024, 512)]
    [InlineData(70, 4130, 300)]
    [InlineData(13, 45, 600)]
    public unsafe void SerialPanelOrderAgreesBitwise(int m, int n, int k)
    {
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
                foreach (bool accumulate in new[] { false, true })
                {
                    var a = Numerics.Random(m * k, 11);     // [m,k] or [k,m]
                    var b = Numerics.Random(k * n, 12);     // [k,n] or [n,k]
                    var c0 = Numerics.Random(m * n, 13);    // [m,n] prior C
                    var panelwise = (float[])c0.Clone();
                    var packAll = (float[])c0.Clone();
                    var twoThreads = (float[])c0.Clone();
                    int lda = ta ? m : k, ldb = tb ? k : n;
                    fixed (float* pa = a, pb = b, p1 = panelwise, p2 = packAll)
                    {
                        try
                        {
                            Gemm.PrefetchB = true;
                            Gemm.MultiplyCore(pa, lda, ta, pb, ldb, tb, p1, n, m, n, k, accumulate, parallel: false);
                            Gemm.PrefetchB = false;
                            Gemm.MultiplyCore(pa, lda, ta, pb, ldb, tb, p2, n, m, n, k, accumulate, parallel: false);
                        }
                        finally { Gemm.PrefetchB = true; }
                    }
                    using (Workers.Limit(2)) Gemm.Multiply(a, b, twoThreads, m, n, k, ta, tb, accumulate);
                    string what = $"m={m} n={n} k={k} ta={ta} tb={tb} acc={accumulate}";
                    Numerics.BitwiseEqual(packAll, panelwise, "panel-wise vs pack-all, " + what);
                    Numerics.BitwiseEqual(twoThreads, panelwise, "serial vs 2 threads, " + what);
                }
    }

    /// <summary>
    /// Batched serving relies on it: row i of C depends only on row i of A and on B, bitwise, whatever M is and
    /// whatever the other rows hold, because every row sums its k terms in the same order. Checked for every
    /// layout, with and without accumulation, for M = 1, 2, 3 (either side of the few-rows path), a ragged 8-row
    /// panel and a multi-panel M, and k over one and several 256-deep blocks.
    /// </summary>
    [Theory]
    [InlineData(64, 70)]
    [InlineData(600, 45)]
    [InlineData(300, 33)]
    public void RowResultDoesNotDependOnM(int k, int n)
    {
        const int most = 37;
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
                foreach (bool accumulate in new[] { false, true })
                {
                    var b = Numerics.Random(k * n, 7);
                    var full = Numerics.Random(most * k, 8); // [most, k] rows of op(A)
                    var c0 = Numerics.Random(most * n, 9);   // [most, n] prior C for accumulation
                    float[]? reference = null;                 // [n] row 0 of C with M = 1
                    foreach (int m in new[] { 1, 2, 3, 8, 13, most })
                    {
                        // Row 0 of A is the same each time; the other rows are drawn afresh for every M.
                        var rows = Numerics.Random(m * k, (ulong)(100 + m));
                        Array.Copy(full, rows, k);
                        var a = ta ? Transpose(rows, m, k) : rows;
                        var c = c0[..(m * n)];
                        Gemm.Multiply(a, tb ? Transpose(b, k, n) : b, c, m, n, k, ta, tb, accumulate);
                        if (reference is null) reference = c[..n];
                        else Numerics.BitwiseEqual(reference, c.AsSpan(0, n), $"row 0 at M={m} ta={ta} tb={tb} acc={accumulate} k={k} n={n}");
                    }
                }
    }

    private static float[] Transpose(float[] x, int rows, int cols)
    {
        var t = new float[x.Length];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) t[j * rows + i] = x[i * cols + j];
        return t;
    }
}
