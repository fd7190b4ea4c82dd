namespace MoeSharp.Cluster.Shards;

/// <summary>
/// Rows of floats on the wire, as fp32 or as bf16 (the top 16 bits, rounded to nearest even), which halves the bytes
/// at a relative rounding of at most 2⁻⁸ per value (half of a step of 7 stored mantissa bits). Exactly one of the arrays is set.
/// </summary>
[GenerateSerializer, Immutable]
public readonly record struct RowData([property: Id(0)] float[]? F32, [property: Id(1)] ushort[]? Bf16)
{
    /// <summary>Values carried.</summary>
    public int Length => F32?.Length ?? Bf16?.Length ?? 0;

    /// <summary>Bytes of the values on the wire (4 or 2 per value).</summary>
    public long Bytes => F32 is not null ? 4L * F32.Length : 2L * (Bf16?.Length ?? 0);

    /// <summary>Copies <paramref name="values"/>, or rounds them to bf16 when <paramref name="bf16"/>.</summary>
    public static RowData Encode(ReadOnlySpan<float> values, bool bf16)
    {
        if (!bf16) return new RowData(values.ToArray(), null);
        var half = new ushort[values.Length];
        for (int i = 0; i < values.Length; i++) half[i] = ToBf16(values[i]);
        return new RowData(null, half);
    }

    /// <summary>Writes the values into <paramref name="destination"/> [Length].</summary>
    public void DecodeTo(Span<float> destination)
    {
        if (destination.Length != Length) throw new ArgumentException($"{Length} values do not fill {destination.Length}.", nameof(destination));
        if (F32 is not null)
        {
            F32.CopyTo(destination);
            return;
        }
        var half = Bf16 ?? [];
        for (int i = 0; i < half.Length; i++) destination[i] = BitConverter.UInt32BitsToSingle((uint)half[i] << 16);
    }

    /// <summary>The bf16 nearest to <paramref name="value"/> (ties to even); a NaN stays a NaN.</summary>
    internal static ushort ToBf16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        // Adding 0x7FFF plus the kept part's lowest bit rounds the dropped 16 bits to nearest, ties to even.
        bits += 0x7FFFu + ((bits >> 16) & 1);
        return (ushort)(bits >> 16);
    }
}

/// <summary>
/// The rows one shard replica gets in one call: Rows[i] rows for Experts[i], concatenated in that order as Data
/// [Σ Rows, D], each expert's rows in the layer's token order.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record ShardSection([property: Id(0)] int Shard, [property: Id(1)] int Replica, [property: Id(2)] int[] Experts,
    [property: Id(3)] int[] Rows, [property: Id(4)] RowData Data);

/// <summary>
/// One call to a silo for one MoE layer's forward: the sections of every shard replica the caller believes lives on
/// that silo. The receiving grain runs its own section and hands the others to their grains (in the same silo).
/// <paramref name="Step"/> numbers the layer's forwards of caller <paramref name="Caller"/> (one per attached model), so a
/// silo can count the calls of each step.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record ShardRequest([property: Id(0)] int Layer, [property: Id(1)] long Step, [property: Id(2)] ShardSection[] Sections,
    [property: Id(3)] Guid Caller);

/// <summary>One section's answer: the expert outputs [Σ Rows, D] in the section's row order, or the error that kept it from answering.</summary>
[GenerateSerializer, Immutable]
public sealed record ShardResult([property: Id(0)] int Shard, [property: Id(1)] RowData Data, [property: Id(2)] string? Error,
    [property: Id(3)] string Silo);

/// <summary>The answers to a <see cref="ShardRequest"/>, one per section, in its order.</summary>
[GenerateSerializer, Immutable]
public sealed record ShardReply([property: Id(0)] ShardResult[] Sections);

/// <summary>
/// What a shard grain serves, for the caller to check against its own model before it sends rows: the layer's shape,
/// and the digest of its router weights (<see cref="ShardHost.RouterDigest"/>), which tells two checkpoints of one
/// shape apart (another run, another fine-tune) at the cost of hashing E·D floats.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record ShardInfo(
    [property: Id(0)] string Silo,
    [property: Id(1)] string Checkpoint,
    [property: Id(2)] int MoeLayers,
    [property: Id(3)] int Experts,
    [property: Id(4)] int Dim,
    [property: Id(5)] int Hidden,
    [property: Id(6)] string Activation,
    [property: Id(7)] int[] Holds,
    [property: Id(8)] string RouterDigest);
