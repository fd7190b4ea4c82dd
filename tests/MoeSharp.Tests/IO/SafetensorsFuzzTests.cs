using CsCheck;
using MoeSharp.IO;

namespace MoeSharp.Tests.IO;

public sealed class SafetensorsFuzzTests : TempFolderTest
{
    // Every dtype family the reader converts, plus one it only parses (U8), and metadata.
    private const string Header = """
        {"__metadata__":{"T":"4","note":"x"},
         "f":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},
         "h":{"dtype":"F16","shape":[3],"data_offsets":[16,22]},
         "b":{"dtype":"BF16","shape":[3],"data_offsets":[22,28]},
         "d":{"dtype":"F64","shape":[1],"data_offsets":[28,36]},
         "i":{"dtype":"I32","shape":[2],"data_offsets":[36,44]},
         "l":{"dtype":"I64","shape":[2],"data_offsets":[44,60]},
         "u":{"dtype":"U8","shape":[],"data_offsets":[60,61]},
         "e":{"dtype":"F32","shape":[0],"data_offsets":[61,61]}}
        """;

    // Bytes that keep a mutated header close to JSON, so mutations reach the field checks and not only the parser.
    private static readonly byte[] Structural = "{}[]\":,-0123456789eE. \\uD"u8.ToArray();

    [Fact(Timeout = 30_000)]
    public async Task MutatedFilesFailOnlyWithFormatErrors()
    {
        byte[] data = new byte[61];
        new Random(1).NextBytes(data);
        byte[] valid = SafetensorsBytes.Build(Header, data);
        int headerEnd = valid.Length - data.Length;
        using (var file = SafetensorsFile.Open(Write("valid.safetensors", valid)))
            Assert.Equal(8, file.Entries.Count); // the base file itself is valid

        // Digits in the header are shapes and offsets; changing them reaches the size, range and overlap checks.
        int[] digits = [.. Enumerable.Range(8, headerEnd - 8).Where(i => char.IsAsciiDigit((char)valid[i]))];
        var position = Gen.Frequency(
            (2, Gen.Int[0, digits.Length - 1].Select(i => digits[i])),
            (1, Gen.Int[0, headerEnd - 1]),
            (1, Gen.Int[0, valid.Length - 1]));
        var value = Gen.Frequency((1, Gen.Byte), (3, Gen.Int[0, Structural.Length - 1].Select(i => Structural[i])));
        var length = Gen.Frequency((5, Gen.Const(valid.Length)), (1, Gen.Int[0, valid.Length]));
        var mutant = FileMutants.Of(valid, position, value, length);

        await Task.Run(() => mutant.Sample(ReadEverything, iter: 600), TestContext.Current.CancellationToken);
    }

    private void ReadEverything(byte[] bytes)
    {
        string path = Write($"{Guid.NewGuid():N}.safetensors", bytes);
        try
        {
            using var file = SafetensorsFile.Open(path);
            foreach (var entry in file.Entries)
            {
                // Each read either succeeds or reports a dtype mismatch / out-of-range value as a format error.
                try { file.ReadFloat32(entry.Name); } catch (SafetensorsFormatException) { }
                try { file.ReadInt32(entry.Name); } catch (SafetensorsFormatException) { }
            }
            Assert.Throws<KeyNotFoundException>(() => file["\u0001missing"]);
        }
        catch (SafetensorsFormatException)
        {
        }
        finally
        {
            File.Delete(path);
        }
    }
}
