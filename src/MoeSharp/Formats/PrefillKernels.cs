using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using MoeSharp.Kernels;

namespace MoeSharp.Formats;

/// <summary>
/// Prompt passes over stored weights: Y[T, N] = X[T, K]·Wᵀ as a packed fp32 GEMM whose B panels are dequantized
/// straight from the stored rows, 256 columns at a time, so W is read once per call and never exists as fp32 in
/// full. X is packed once into [256, 8] micro-panels; the GEMM's own 8 × 32 register tile (<see cref="Gemm.Kernel8x32"/>) does the rest.
/// </summary>
/// <remarks>
/// Dimensions: T tokens (rows of X and Y), N weight rows, K columns. Every Y[t, r] is summed the same way whatever
/// T, the other tokens or the thread count: per 256-deep block of k, a fused multiply-add chain over k in order from
/// zero, and the blocks added in order, so a token's row depends on its own row of X alone. That is not the
/// matrix-vector arithmetic of <see cref="MatVecKernels"/> (fp32 activations instead of 8-bit blocks, another sum
/// order), so callers choose this path by something that depends on one sequence only (its prompt), never on the
/// batch. The scalar twin <see cref="MultiplyReference"/> sums in the same order and agrees bitwise.
/// </remarks>
[SkipLocalsInit]
internal static unsafe class PrefillKernels
{
    /// <summary>Depth of a packed block: the [256, 32] B panel is 32 KiB and stays in L1/L2 while all token panels pass.</summary>
    internal const int KC = 256;

    /// <summary>Tokens per micro-panel (rows of the register tile).</summary>
    private const int MR = 8;

    /// <summary>Weight rows per packed panel (columns of the register tile: two 16-lane vectors).</summary>
    private const int NR = 32;

    /// <summary>Weight rows per work item: two panels, so a 3584-row expert gives 56 items to balance over the threads.</summary>
    private const int RowsPerItem = 2 * NR;

    /// <summary>Whether the vector path runs here; without AVX-512 callers keep the matrix-vector arithmetic.</summary>
    public static bool Supported => Avx512F.IsSupported && Vector512.IsHardwareAccelerated;

    [ThreadStatic] private static float[]? t_packA; // [K / KC, T / MR, KC, MR] packed X of the calling thread
    [ThreadStatic] private static float[]? t_stage; // [NR, KC] dequantized rows of one panel, per worker
    [ThreadStatic] private static float[]? t_panel; // [KC, NR] packed B panel, per worker

    /// <summary>Y [tokens, rows] = X [tokens, cols] · Wᵀ, W being <paramref name="rows"/> stored rows of <paramref name="rowBytes"/> bytes.</summary>
    public static void Multiply(WeightFormat format, byte* w, long rowBytes, int rows, int cols, float* x, int tokens, float* y)
    {
        if (tokens == 0 || rows == 0) return;
        if (cols == 0)
        {
            new Span<float>(y, tokens * rows).Clear();
            return;
        }
        int tokenPanels = (tokens + MR - 1) / MR, kBlocks = (cols + KC - 1) / KC;
        long packLength = (long)kBlocks * tokenPanels * KC * MR;
        if (t_packA is null || t_packA.Length < packLength)
            t_packA = GC.AllocateUninitializedArray<float>(checked((int)packLength), pinned: true);
        float* packA = (float*)Unsafe.AsPointer(ref t_packA[0]);
        Workers.For(tokenPanels, new PackJob { X = x, PackA = packA, Tokens = tokens, Cols = cols, TokenPanels = tokenPanels });
        var job = new ComputeJob
        {
            W = w, RowBytes = rowBytes, Format = format, Rows = rows, Cols = cols, PackA = packA, Y = y, Tokens = tokens,
            TokenPanels = tokenPanels, KBlocks = kBlocks, BlockBytes = format.BlockBytes(), BlockSize = format.BlockSize(),
        };
        Workers.For((rows + RowsPerItem - 1) / RowsPerItem, job);
    }

    /// <summary>
    /// The scalar twin: each element dequantized by the format's definition, then per 256-deep block a fused
    /// multiply-add chain from zero, blocks added in order — the vector path's operations one element at a time.
    /// </summary>
    public static void MultiplyReference(WeightFormat format, ReadOnlySpan<byte> w, int rows, int cols, ReadOnlySpan<float> x, int tokens, Span<float> y)
    {
        long rowBytes = format.RowBytes(cols);
        var row = new float[cols]; // [K]
        for (int r = 0; r < rows; r++)
        {
            RowKernels.DequantizeRowReference(format, w.Slice(checked((int)(r * rowBytes)), (int)rowBytes), row);
            for (int t = 0; t < tokens; t++)
            {
                var xt = x.Slice(t * cols, cols);
                float sum = 0;
                for (int pc = 0; pc < cols; pc += KC)
                {
                    float block = 0;
                    for (int k = pc; k < Math.Min(cols, pc + KC); k++) block = MathF.FusedMultiplyAdd(xt[k], row[k], block);
                    sum = pc == 0 ? block : sum + block;
                }
                y[t * rows + r] = sum;
            }
        }
    }

    /// <summary>Packs the 8 tokens of one micro-panel for every k block: [KC, MR] each, zero past the last token or column.</summary>
    private struct PackJob : IWorkItem
    {
        public float* X, PackA;
        public int Tokens, Cols, TokenPanels;

        public readonly void Invoke(int p)
        {
            int t0 = p * MR, count = Math.Min(MR, Tokens - t0);
            for (int pc = 0, kb = 0; pc < Cols; pc += KC, kb++)
            {
                int kc = Math.Min(KC, Cols - pc);
                float* dst = PackA + ((long)kb * TokenPanels + p) * KC * MR; // [KC, MR]
                int full = count == MR ? kc / 8 * 8 : 0;
                for (int kk = 0; kk < full; kk += 8) Gemm.Transpose8x8(X + (long)t0 * Cols + pc + kk, Cols, dst + kk * MR, MR);
                for (int kk = full; kk < KC; kk++)
                    for (int i = 0; i < MR; i++)
                        dst[kk * MR + i] = i < count && kk < kc ? X[(long)(t0 + i) * Cols + pc + kk] : 0f;
            }
        }
    }

    /// <summary>One item: 64 weight rows, every k block dequantized into packed panels, times every token panel.</summary>
    private struct ComputeJob : IWorkItem
    {
        public byte* W;
        public long RowBytes;
        public WeightFormat Format;
        public int Rows, Cols, Tokens, TokenPanels, KBlocks, BlockBytes, BlockSize;
        public float* PackA, Y;

        public readonly void Invoke(int item)
        {
            t_stage ??= GC.AllocateUninitializedArray<float>(NR * KC, pinned: true);
            t_panel ??= GC.AllocateUninitializedArray<float>(KC * NR, pinned: true);
            float* stage = (float*)Unsafe.AsPointer(ref t_stage[0]); // [NR, KC]
            float* panel = (float*)Unsafe.AsPointer(ref t_panel[0]); // [KC, NR]
            float* tile = stackalloc float[MR * NR]; // [MR, NR] for ragged edges
            int rEnd = Math.Min(Rows, (item + 1) * RowsPerItem);
            for (int r0 = item * RowsPerItem; r0 < rEnd; r0 += NR)
            {
                int cols = Math.Min(NR, rEnd - r0);
                for (int kb = 0; kb < KBlocks; kb++)
                {
                    int pc = kb * KC, kc = Math.Min(KC, Cols - pc);
                    PackPanel(r0, cols, pc, kc, stage, panel);
                    bool first = kb == 0;
                    float* a = PackA + (long)kb * TokenPanels * KC * MR;
                    for (int p = 0; p < TokenPanels; p++, a += KC * MR)
                    {
                        int t0 = p * MR, count = Math.Min(MR, Tokens - t0);
                        float* c = Y + (long)t0 * Rows + r0;
                        if (count == MR && cols == NR)
                        {
                            Gemm.Kernel8x32(a, panel, kc, c, Rows, first);
                            continue;
                        }
                        Gemm.Kernel8x32(a, panel, kc, tile, NR, first: true);
                        for (int i = 0; i < count; i++)
                            for (int j = 0; j < cols; j++)
                                c[(long)i * Rows + j] = first ? tile[i * NR + j] : c[(long)i * Rows + j] + tile[i * NR + j];
                    }
                }
            }
        }

        /// <summary>Rows [r0, r0 + cols) × columns [pc, pc + kc) dequantized, then transposed into the [KC, NR] panel (zero past the last row).</summary>
        private readonly void PackPanel(int r0, int cols, int pc, int kc, float* stage, float* panel)
        {
            long offset = (long)(pc / BlockSize) * BlockBytes; // pc is a multiple of 256, so of every block size
            for (int j = 0; j < NR; j++)
            {
                if (j < cols) RowKernels.DequantizeRow(Format, W + (r0 + j) * RowBytes + offset, stage + j * KC, kc);
                else new Span<float>(stage + j * KC, kc).Clear();
            }
            int full = kc / 8 * 8;
            for (int kk = 0; kk < full; kk += 8)
                for (int j = 0; j < NR; j += 8) Gemm.Transpose8x8(stage + j * KC + kk, KC, panel + kk * NR + j, NR);
            for (int kk = full; kk < kc; kk++)
                for (int j = 0; j < NR; j++) panel[kk * NR + j] = stage[j * KC + kk];
        }
    }
}
