using CsCheck;

namespace MoeSharp.Tests.IO;

/// <summary>Fuzzing input for file readers: a valid file with a few bytes changed and perhaps cut short.</summary>
internal static class FileMutants
{
    /// <summary>
    /// One to three edits (an offset from <paramref name="position"/>, a byte from <paramref name="value"/>) applied to
    /// the first <paramref name="length"/> bytes of <paramref name="valid"/>; edits past the cut are dropped.
    /// </summary>
    public static Gen<byte[]> Of(byte[] valid, Gen<int> position, Gen<byte> value, Gen<int> length) =>
        Gen.Select(Gen.Select(position, value).Array[1, 3], length, (edits, keep) =>
        {
            byte[] bytes = valid[..keep];
            foreach (var (at, to) in edits)
            {
                if (at < bytes.Length) bytes[at] = to;
            }
            return bytes;
        });
}
