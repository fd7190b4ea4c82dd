using MoeSharp.Cluster.Shards;

namespace MoeSharp.Cluster.Tests.Shards;

/// <summary>The rows' bf16 encoding against hand-derived bit patterns: round to nearest, ties to even.</summary>
public sealed class RowDataTests
{
    [Theory]
    [InlineData(0x3F800000u, (ushort)0x3F80)] // 1
    [InlineData(0x3F808000u, (ushort)0x3F80)] // 1 + 2⁻⁸, halfway: ties to the even 0x3F80
    [InlineData(0x3F818000u, (ushort)0x3F82)] // 1 + 3·2⁻⁸, halfway: ties to the even 0x3F82
    [InlineData(0x3F808001u, (ushort)0x3F81)] // just above halfway: up
    [InlineData(0xBF807FFFu, (ushort)0xBF80)] // −(just below halfway): down in magnitude
    [InlineData(0x7F7FFFFFu, (ushort)0x7F80)] // float.MaxValue rounds to +∞
    [InlineData(0xFF800000u, (ushort)0xFF80)] // −∞ stays
    public void Bf16RoundsToNearestEven(uint bits, ushort expected) => Assert.Equal(expected, RowData.ToBf16(BitConverter.UInt32BitsToSingle(bits)));

    [Fact]
    public void Bf16KeepsNaNAndStaysWithinHalfAStep()
    {
        Assert.True(float.IsNaN(BitConverter.UInt32BitsToSingle((uint)RowData.ToBf16(float.NaN) << 16)));
        Assert.True(float.IsNaN(BitConverter.UInt32BitsToSingle((uint)RowData.ToBf16(BitConverter.UInt32BitsToSingle(0x7F800001u)) << 16)));
        var values = Numerics.Random(4096, 3, 100f);
        var rows = RowData.Encode(values, bf16: true);
        Assert.Equal(2L * values.Length, rows.Bytes);
        var back = new float[values.Length];
        rows.DecodeTo(back);
        // Half a step of 7 mantissa bits: 2⁻⁸ of the value's power of two, so at most 2⁻⁸ of the value.
        Numerics.Close(values, back, 1f / 256, 0, "bf16 round trip");
        var exact = RowData.Encode(values, bf16: false);
        Assert.Equal(4L * values.Length, exact.Bytes);
        exact.DecodeTo(back);
        Numerics.BitwiseEqual(values, back, "fp32 round trip");
    }
}
