using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MoeSharp.Formats;

/// <summary>
/// An fp32 activation vector quantized to symmetric 8-bit blocks, ggml's <c>vec_dot_type</c>: blocks of 32 (Q8_0,
/// for Q8_0 and MXFP4 weights) or 256 (Q8_K, for the k-quants), x ≈ d·q with d = max|x|/127 per block, q rounded to
/// nearest even. Per-16 and per-32 sums of q carry the constant terms of the formats (Q4_K's mins, Q6_K's −32,
/// MXFP4's offset table), so the weight side never needs them.
/// </summary>
/// <remarks>Buffers are pinned and grow once; one instance per calling thread, read by its workers.</remarks>
internal sealed unsafe class Q8Activation
{
    [ThreadStatic] private static Q8Activation? t_current;

    private sbyte[] _q = []; // [n]
    private float[] _d = []; // [n / block]
    private short[] _sums16 = []; // [n / 16]
    private short[] _sums32 = []; // [n / 32]

    /// <summary>The calling thread's buffers.</summary>
    public static Q8Activation Current => t_current ??= new Q8Activation();

    /// <summary>Elements quantized by the last <see cref="Quantize(ReadOnlySpan{float}, int)"/>.</summary>
    public int Length { get; private set; }

    /// <summary>Elements per scale: 32 or 256.</summary>
    public int Block { get; private set; }

    /// <summary>The block size a format's integer dot product needs; 0 for the float formats, which take fp32 x.</summary>
    public static int BlockFor(WeightFormat format) => format switch
    {
        WeightFormat.Q8_0 or WeightFormat.MXFP4 => 32,
        WeightFormat.Q4_K or WeightFormat.Q6_K => 256,
        _ => 0,
    };

    /// <summary>Raw views of the buffers for the kernels.</summary>
    public Q8Vector View => new()
    {
        Q = (sbyte*)Unsafe.AsPointer(ref _q[0]),
        D = (float*)Unsafe.AsPointer(ref _d[0]),
        Sums16 = (short*)Unsafe.AsPointer(ref _sums16[0]),
        Sums32 = (short*)Unsafe.AsPointer(ref _sums32[0]),
    };

    /// <summary>q, d and the sums of x (length a multiple of <paramref name="block"/>), vectorised where AVX-512 is.</summary>
    public void Quantize(ReadOnlySpan<float> x, int block) => Quantize(x, block, Avx512F.IsSupported);

    /// <summary>The scalar twin of <see cref="Quantize(ReadOnlySpan{float}, int)"/>; the two agree bitwise.</summary>
    public void QuantizeReference(ReadOnlySpan<float> x, int block) => Quantize(x, block, vectorized: false);

    /// <summary>Copies of the quantized values, scales and sums, for tests.</summary>
    public (sbyte[] Q, float[] D, short[] Sums16, short[] Sums32) Snapshot() =>
        (_q[..Length], _d[..(Length / Block)], _sums16[..(Length / 16)], _sums32[..(Length / 32)]);

    private void Quantize(ReadOnlySpan<float> x, int block, bool vectorized)
    {
        if (block is not (32 or 256) || x.Length % block != 0)
            throw new ArgumentException($"activation of {x.Length} elements is not a whole number of {block}-blocks", nameof(x));
        int n = x.Length;
        // One spare element keeps the views valid for n = 0.
        Grow(ref _q, n + 1);
        Grow(ref _d, n / block + 1);
        Grow(ref _sums16, n / 16 + 1);
        Grow(ref _sums32, n / 32 + 1);
        Length = n;
        Block = block;
        Q8Vector v = View;
        fixed (float* px = x)
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
        }
        for (int j = 0; j < n / 32; j++) v.Sums32[j] = (short)(v.Sums16[2 * j] + v.Sums16[2 * j + 1]);
    }

    private static void Grow<T>(ref T[] buffer, int length)
    {
        if (buffer.Length < length) buffer = GC.AllocateArray<T>(length, pinned: true);
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

/// <summary>Pointers into a <see cref="Q8Activation"/>'s pinned buffers.</summary>
internal unsafe struct Q8Vector
{
    public sbyte* Q; // [n]
    public float* D; // [n / block]
    public short* Sums16; // [n / 16]
    public short* Sums32; // [n / 32]
}
