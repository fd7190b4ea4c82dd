using System.Security.Cryptography;
using System.Text;

namespace MoeSharp.Cluster.Config;

/// <summary>
/// A short identity for a checkpoint that every silo can compute on its own copy in milliseconds, so that silos
/// holding different checkpoints are caught before any row is sent. SHA-256 over, for each file of the checkpoint
/// (config.json and the weights; the tokenizer is the client's alone), its name, its length, its first 1 MiB (the
/// safetensors header or GGUF metadata: every tensor's name, shape, dtype and offset) and 4 KiB at 64 evenly spaced
/// offsets. It is a sample, not a hash of every byte: two checkpoints of the same layout whose weights differ only
/// between the samples share it. Written <c>sha256:</c> + 64 hex digits.
/// </summary>
public static class CheckpointFingerprint
{
    private const int HeadBytes = 1 << 20;
    private const int SampleBytes = 4096;
    private const int Samples = 64;

    /// <summary>The fingerprint of a model folder (config.json and its *.safetensors) or of a .gguf file.</summary>
    public static string Of(string checkpoint)
    {
        var files = Files(checkpoint);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[HeadBytes];
        foreach (string file in files)
        {
            using var handle = File.OpenHandle(file);
            long length = RandomAccess.GetLength(handle);
            sha.AppendData(Encoding.UTF8.GetBytes($"{Path.GetFileName(file)}\n{length}\n"));
            int head = RandomAccess.Read(handle, buffer.AsSpan(0, (int)Math.Min(HeadBytes, length)), 0);
            sha.AppendData(buffer, 0, head);
            if (length <= HeadBytes) continue;
            long rest = length - HeadBytes;
            int size = (int)Math.Min(SampleBytes, rest);
            for (int i = 0; i < Samples; i++)
            {
                int n = RandomAccess.Read(handle, buffer.AsSpan(0, size), HeadBytes + (rest - size) * i / (Samples - 1));
                sha.AppendData(buffer, 0, n);
            }
        }
        return "sha256:" + Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>The files the fingerprint covers, in a fixed order; a missing checkpoint is one line naming it.</summary>
    private static List<string> Files(string checkpoint)
    {
        if (File.Exists(checkpoint)) return [checkpoint];
        if (!Directory.Exists(checkpoint)) throw new FileNotFoundException($"checkpoint '{checkpoint}' does not exist (neither a model folder nor a file).");
        var files = new List<string>();
        string config = Path.Combine(checkpoint, "config.json");
        if (File.Exists(config)) files.Add(config);
        var weights = Directory.GetFiles(checkpoint, "*.safetensors");
        Array.Sort(weights, StringComparer.Ordinal);
        files.AddRange(weights);
        if (weights.Length == 0) throw new FileNotFoundException($"checkpoint '{checkpoint}' has no *.safetensors file.");
        return files;
    }
}
