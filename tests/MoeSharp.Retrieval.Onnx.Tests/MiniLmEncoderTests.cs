using System.Numerics.Tensors;

namespace MoeSharp.Retrieval.Onnx.Tests;

/// <summary>The packaged all-MiniLM-L6-v2 behaves as the published model: 384-wide unit vectors that place paraphrases near each other.</summary>
public sealed class MiniLmEncoderTests
{
    [Fact]
    public void EmbeddingsAreUnitVectorsOfTheModelsWidthInInputOrder()
    {
        using var encoder = new MiniLmEncoder { BatchSize = 2 };
        string[] texts = ["a young dog", "the bank raised its interest rate", "a puppy", ""];
        var e = encoder.Encode(texts); // [4, 384]
        Assert.Equal(4 * 384, e.Length);
        for (int i = 0; i < texts.Length; i++)
            Assert.InRange(TensorPrimitives.Norm(e.AsSpan(i * 384, 384)), 1f - 1e-5f, 1f + 1e-5f);
        // Batches of 2 give the same rows as one text at a time (batching must not leak padding into a row).
        var single = encoder.Encode([texts[2]]);
        Assert.True(TensorPrimitives.Distance(single, e.AsSpan(2 * 384, 384)) < 1e-4f);
    }

    [Fact]
    public void AParaphraseIsNearerThanAnUnrelatedSentence()
    {
        using var encoder = new MiniLmEncoder();
        var e = encoder.Encode(["a juvenile canine", "a puppy", "a financial institution that accepts deposits"]);
        float paraphrase = TensorPrimitives.Dot(e.AsSpan(0, 384), e.AsSpan(384, 384));
        float unrelated = TensorPrimitives.Dot(e.AsSpan(0, 384), e.AsSpan(768, 384));
        Assert.True(paraphrase > unrelated + 0.2f, $"cos(juvenile canine, puppy) {paraphrase:F3} vs cos(juvenile canine, bank) {unrelated:F3}");
    }
}
