using System.Text.Json;
using MoeSharp.IO;

namespace MoeSharp.Tests.IO;

public class ModelStoreTests
{
    private const string HfConfig = """
        { "model_type": "mixtral", "vocab_size": 32, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
          "num_key_value_heads": 1, "intermediate_size": 24, "num_local_experts": 4, "num_experts_per_tok": 2,
          "max_position_embeddings": 64 WINDOW }
        """;

    private const string ReferenceConfig = """
        { "dim": 16, "n_layers": 2, "n_heads": 2, "n_kv_heads": 1, "hidden_dim": 24, "vocab_size": 32,
          "num_experts": 4, "num_experts_per_tok": 2 WINDOW }
        """;

    private static int HfContext(string window, int? maxContext = null) =>
        ModelStore.FromHuggingFace(JsonDocument.Parse(HfConfig.Replace("WINDOW", window)).RootElement, "config.json", maxContext).Context;

    private static int ReferenceContext(string window, int? maxContext = null) =>
        ModelStore.FromReference(JsonDocument.Parse(ReferenceConfig.Replace("WINDOW", window)).RootElement, "params.json", maxContext).Context;

    [Fact]
    public void ASlidingWindowCapsTheContextAndNoWindowLeavesIt()
    {
        Assert.Equal(64, HfContext(""));
        Assert.Equal(64, HfContext(""", "sliding_window": null"""));
        Assert.Equal(8, HfContext(""", "sliding_window": 8"""));
        Assert.Equal(64, HfContext(""", "sliding_window": 4096"""));
        Assert.Equal(8, HfContext(""", "sliding_window": 8""", maxContext: 100));
        Assert.Equal(5, HfContext(""", "sliding_window": 8""", maxContext: 5));
        Assert.Equal(4096, ReferenceContext(""));
        Assert.Equal(8, ReferenceContext(""", "sliding_window": 8"""));
    }
}
