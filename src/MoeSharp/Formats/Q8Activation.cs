using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MoeSharp.Formats;

/// <summary>
/// Activation rows quantized to symmetric 8-bit blocks, ggml's <c>vec_dot_type</c>: blocks of 32 (Q8_0, for Q8_0 and
/// MXFP4 weights) or 256 (Q8_K, for the k-quants), x ≈ d·q with d = max|x|/127 per block, q rounded to nearest even.
/// Per-16 and per-32 sums of q carry the constant terms of the formats (Q4_K's mins, Q6_K's −32, MXFP4's offset
/// table), so the weight side never needs them.
/// </summary>
/// <remarks>
/// Blocks of 32 also get the layouts the AVX-512 kernels read, computed once per row instead of once per weight row:
/// −q (Q8_0 moves the weight's sign onto x), q reordered per four blocks as MXFP4's nibbles come out of a byte
/// permute, MXFP4's offset terms, and d spread over the lanes of each block; blocks of 256 get q in Q4_K's nibble order. Buffers are pinned and grow once; one
/// instance per calling thread, read by its workers.
/// </remarks>
internal sealed unsafe class Q8Activation
{
    [ThreadStatic] private static Q8Activation? t_current;

    private sbyte[] _q = []; // [rows, stride]
    private float[] _d = []; // [rows, stride / 32]
    private short[] _sums16 = []; // [rows, stride / 16]
    private short[] _sums32 = []; // [rows, stride / 32]
    private sbyte[] _negQ = []; // [rows, stride]
    private sbyte[] _mxQ = []; // [rows, stride]: per 4 blocks, elements 0-15 of each block, then 16-31 of each
    private short[] _mxOffset = []; // [rows, stride / 4]: per 4 blocks, 32 int16 lanes of −12·(pair sums of mxQ)
    private float[] _dPair = []; // [rows, stride / 4]: per 2 blocks, 16 lanes (8 per block) of d
    private float[] _dQuad = []; // [rows, stride / 8]: per 4 blocks, 16 lanes (4 per block) of d
    private sbyte[] _k4Q = []; // [rows, stride]: per 256-block, q in Q4_K's nibble order
    private float[] _source = []; // [rows, cols]: the x the buffers hold, to recognise it when it comes again
    private bool _sourceVectorized;
    private int _stride;

    /// <summary>
    /// Whether a call with the x the buffers already hold returns at once; on except in the bench's A/B. Decode
    /// quantizes the same x for W1 and W3 of each expert and for the Q, K and V projections.
    /// </summary>
    internal static bool Reuse { get; set; } = true;

    /// <summary>The calling thread's buffers.</summary>
    public static Q8Activation Current => t_current ??= new Q8Activation();

    /// <summary>Elements per row quantized by the last call.</summary>
    public int Length { get; private set; }

    /// <summary>Rows quantized by the last call.</summary>
    public int Rows { get; private set; }

    /// <summary>Elements per scale: 32 or 256.</summary>
    public int Block { get; private set; }

    /// <summary>The block size a format's integer dot product needs; 0 for the float formats, which take fp32 x.</summary>
    public static int BlockFor(WeightFormat format) => format switch
    {
        WeightFormat.Q8_0 or WeightFormat.MXFP4 => 32,
        WeightFormat.Q4_K or WeightFormat.Q6_K => 256,
        _ => 0,
    };

    /// <summary>Raw views of row 0's buffers for the kernels.</summary>
    public Q8Vector View => ViewOf(0);

    /// <summary>Raw views of row <paramref name="row"/>'s buffers.</summary>
    public Q8Vector ViewOf(int row)
    {
        long e = (long)row * _stride;
        return new Q8Vector
        {
            Q = (sbyte*)Unsafe.AsPointer(ref _q[e]),
            D = (float*)Unsafe.AsPointer(ref _d[e / 32]),
            Sums16 = (short*)Unsafe.AsPointer(ref _sums16[e / 16]),
            Sums32 = (short*)Unsafe.AsPointer(ref _sums32[e / 32]),
            NegQ = (sbyte*)Unsafe.AsPointer(ref _negQ[e]),
            MxQ = (sbyte*)Unsafe.AsPointer(ref _mxQ[e]),
            MxOffset = (short*)Unsafe.AsPointer(ref _mxOffset[e / 4]),
            DPair = (float*)Unsafe.AsPointer(ref _dPair[e / 4]),
            DQuad = (float*)Unsafe.AsPointer(ref _dQuad[e / 8]),
            K4Q = (sbyte*)Unsafe.AsPointer(ref _k4Q[e]),
        };
    }

    /// <summary>q, d and the sums of x (length a multiple of <paramref name="block"/>), vectorised where AVX-512 is.</summary>
    public void Quantize(ReadOnlySpan<float> x, int block) => Quantize(x, 1, x.Length, block, Avx512F.IsSupported);

    /// <summary>Each of the <paramref name="rows"/> rows of x [rows, cols] as <see cref="Quantize(ReadOnlySpan{float}, int)"/> does it alone.</summary>
    public void QuantizeRows(ReadOnlySpan<float> x, int rows, int cols, int block) => Quantize(x, rows, cols, block, Avx512F.IsSupported);

    /// <summary>The scalar twin of <see cref="Quantize(ReadOnlySpan{float}, int)"/>; the two agree bitwise.</summary>
    public void QuantizeReference(ReadOnlySpan<float> x, int block) => Quantize(x, 1, x.Length, block, vectorized: false);

    /// <summary>Copies of row 0's quantized values, scales and sums, for tests.</summary>
    public (sbyte[] Q, float[] D, short[] Sums16, short[] Sums32) Snapshot() =>
        (_q[..Length], _d[..(Length / Block)], _sums16[..(Length / 16)], _sums32[..(Length / 32)]);

    private void Quantize(ReadOnlySpan<float> x, int rows, int cols, int block, bool vectorized)
    {
        if (block is not (32 or 256) || cols % block != 0 || x.Length != (long)rows * cols)
            throw new ArgumentException($"activation of {rows} × {cols} elements is not whole rows of {block}-blocks", nameof(x));
        // The same bits give the same quantization, so nothing needs recomputing; a bitwise comparison of a few KiB
        // costs far less than the quantization and its derived layouts.
        var bits = MemoryMarshal.AsBytes(x);
        if (Reuse && rows == Rows && cols == Length && block == Block && vectorized == _sourceVectorized && x.Length <= _source.Length
            && bits.SequenceEqual(MemoryMarshal.AsBytes(_source.AsSpan(0, x.Length))))
            return;
        // Rows are padded to whole groups of four 32-blocks (MXFP4's step), plus one group so that n = 0 has views.
        int stride = (cols + 127) / 128 * 128 + 128;
        long total = (long)rows * stride;
        Grow(ref _q, total);
        Grow(ref _d, total / 32);
        Grow(ref _sums16, total / 16);
        Grow(ref _sums32, total / 32);
        // The 32-block layouts are sized for every block size, so that each row has valid views; only 32 fills them.
        Grow(ref _negQ, total);
        Grow(ref _mxQ, total);
        Grow(ref _mxOffset, total / 4);
        Grow(ref _dPair, total / 4);
        Grow(ref _dQuad, total / 8);
        Grow(ref _k4Q, total);
        _stride = stride;
        Length = cols;
        Rows = rows;
        Block = block;
        fixed (float* px = x)
            for (int r = 0; r < rows; r++)
                QuantizeRow(px + (long)r * cols, cols, block, vectorized, ViewOf(r));
        Grow(ref _source, x.Length);
        x.CopyTo(_source);
        _sourceVectorized = vectorized;
    }

    private static void QuantizeRow(float* px, int n, int block, bool vectorized, Q8Vector v)
    {
        for (int b = 0; b < n / block; b++)
        {
            float* xb = px + b * block;
            float amax = vectorized ? AbsMax(xb, block) : AbsMaxReference(xb, block);
            // amax·(1/d) ≤ 127·(1 + 2^-22) rounds to at most 127, so q needs no clamp.
            float d = amax / 127f, id = d != 0 ? 1f / d : 0f;
            v.D[b] = d;
            for (int s = 0; s < block; s += 16)
                v.Sums16[(b * block + s) / 16] = vectorized
                    ? Round16(xb + s, id, v.Q + b * block + s)
                    : Round16Reference(xb + s, id, v.Q + b * block + s);
        }
        for (int j = 0; j < n / 32; j++) v.Sums32[j] = (short)(v.Sums16[2 * j] + v.Sums16[2 * j + 1]);
        if (block == 32) Layouts32(n, v);
        else Layouts256(n, v);
    }

    /// <summary>
    /// Q4_K's order: per 256-block, 64-byte vectors of elements (0-31, 64-95), (32-63, 96-127), (128-159, 192-223),
    /// (160-191, 224-255), which line up with the low and high nibbles of its two 64-byte loads.
    /// </summary>
    private static void Layouts256(int n, Q8Vector v)
    {
        for (int b = 0; b < n / 256; b++)
        {
            sbyte* q = v.Q + 256 * b, k = v.K4Q + 256 * b;
            for (int part = 0; part < 4; part++)
            {
                int first = part / 2 * 128 + part % 2 * 32;
                for (int j = 0; j < 32; j++)
                {
                    k[64 * part + j] = q[first + j];
                    k[64 * part + 32 + j] = q[first + 64 + j];
                }
            }
        }
    }

    /// <summary>The derived layouts of a row of 32-blocks; integer copies and d moved between lanes, so exact.</summary>
    private static void Layouts32(int n, Q8Vector v)
    {
        int e = 0;
        // Two's complement negation wraps alike in both loops (and |q| ≤ 127 never wraps).
        if (Vector512.IsHardwareAccelerated)
            for (; e <= n - 64; e += 64) (-Vector512.Load(v.Q + e)).Store(v.NegQ + e);
        for (; e < n; e++) v.NegQ[e] = (sbyte)-v.Q[e];
        int blocks = n / 32;
        for (int p = 0; p < (blocks + 1) / 2; p++)
            for (int m = 0; m < 16; m++)
                v.DPair[16 * p + m] = 2 * p + m / 8 < blocks ? v.D[2 * p + m / 8] : 0f;
        for (int g = 0; g < blocks / 4; g++)
        {
            sbyte* q = v.Q + 128 * g, mx = v.MxQ + 128 * g;
            for (int k = 0; k < 4; k++)
                for (int j = 0; j < 16; j++)
                {
                    mx[16 * k + j] = q[32 * k + j];
                    mx[64 + 16 * k + j] = q[32 * k + 16 + j];
                }
            for (int i = 0; i < 32; i++)
                v.MxOffset[32 * g + i] = (short)(-12 * (mx[2 * i] + mx[2 * i + 1] + mx[64 + 2 * i] + mx[64 + 2 * i + 1]));
            for (int m = 0; m < 16; m++) v.DQuad[16 * g + m] = v.D[4 * g + m / 4];
        }
    }

    private static void Grow<T>(ref T[] buffer, long length)
    {
        if (buffer.Length < length) buffer = GC.AllocateArray<T>(checked((int)length), pinned: true);
    }

    // Max is exact and order-free (NaN propagates in both), so the vector and scalar maxima are the same value.
    private static float AbsMaxReference(float* x, int n)
    {
        float m = 0;
        for (int i = 0; i < n; i++) m = MathF.Max(m, MathF.Abs(x[i]));
        return m;
    }

    private static float AbsMax(float* x, int n)
    {
        Vector512<float> m = Vector512<float>.Zero;
        for (int i = 0; i < n; i += 16) m = Vector512.Max(m, Vector512.Abs(Vector512.Load(x + i)));
        Vector128<float> h = Vector128.Max(Vector256.Max(m.GetLower(), m.GetUpper()).GetLower(), Vector256.Max(m.GetLower(), m.GetUpper()).GetUpper());
        return MathF.Max(MathF.Max(h[0], h[1]), MathF.Max(h[2], h[3]));
    }

    private static short Round16Reference(float* x, float id, sbyte* q)
    {
        int sum = 0;
        for (int i = 0; i < 16; i++)
        {
            q[i] = (sbyte)(int)MathF.Round(x[i] * id, MidpointRounding.ToEven);
            sum += q[i];
        }
        return (short)sum;
    }

    // vcvtps2dq rounds by MXCSR, nearest even by default: the twin's MathF.Round.
    private static short Round16(float* x, float id, sbyte* q)
    {
        Vector512<int> r = Avx512F.ConvertToVector512Int32(Vector512.Load(x) * Vector512.Create(id));
        Avx512F.ConvertToVector128SByte(r).Store(q);
        return (short)Vector512.Sum(r);
    }
}

/// <summary>Pointers into one row of a <see cref="Q8Activation"/>'s pinned buffers.</summary>
internal unsafe struct Q8Vector
{
    public sbyte* Q; // [n]
    public float* D; // [n / block]
    public short* Sums16; // [n / 16]
    public short* Sums32; // [n / 32]
    public sbyte* NegQ; // [n], blocks of 32 only
    public sbyte* MxQ; // [n / 128 · 128], blocks of 32 only
    public short* MxOffset; // [n / 128 · 32], blocks of 32 only
    public float* DPair; // [(n / 64 + 1) · 16], blocks of 32 only
    public float* DQuad; // [n / 128 · 16], blocks of 32 only
    public sbyte* K4Q; // [n], blocks of 256 only
}
