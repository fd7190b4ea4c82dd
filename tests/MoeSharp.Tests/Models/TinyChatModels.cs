using System.Text.Json.Nodes;
using MoeSharp.IO;
using MoeSharp.Nn;
using MoeSharp.Models;
using MoeSharp.Text;

namespace MoeSharp.Tests.Models;

/// <summary>
/// A tiny random model of each architecture written as a Hugging Face folder beside a real tokenizer from
/// ../shared/tokenizers (tokenizer.json and tokenizer_config.json copied into a temp folder), with the vocabulary
/// the tokenizer's size and the embeddings tied to keep the files small. The shared folder has no Llama/Mixtral or
/// OLMoE or DeepSeek-V2 tokenizer, so those get GPT-OSS's (harmony, no template) and DeepSeek-V3's (BOS in its template).
/// The server's tests use it too, by link.
/// </summary>
internal static class TinyChatModels
{
    public static TheoryData<string> Architectures() => ["mixtral", "qwen3_moe", "olmoe", "qwen2_moe", "deepseek_v2", "deepseek_v3", "gpt_oss"];

    public static string TokenizerOf(string arch) => arch switch
    {
        "mixtral" or "gpt_oss" => "gptoss",
        "olmoe" or "deepseek_v2" or "deepseek_v3" => "deepseek_v3",
        _ => "qwen3",
    };

    /// <summary>Copies the tokenizer files of <paramref name="arch"/> into <paramref name="folder"/> (the test is skipped when ../shared is absent).</summary>
    public static HfTokenizer WriteTokenizer(string arch, string folder)
    {
        string source = TestPaths.SharedTokenizer(TokenizerOf(arch));
        Directory.CreateDirectory(folder);
        foreach (string name in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(source, name), Path.Combine(folder, name), overwrite: true);
        return HfTokenizer.Load(folder);
    }

    /// <summary>Writes config.json, model.safetensors and the tokenizer of <paramref name="arch"/> into <paramref name="folder"/>.</summary>
    public static HfTokenizer Write(string arch, string folder, ulong seed = 1)
    {
        var tokenizer = WriteTokenizer(arch, folder);
        JsonObject config = arch == "mixtral"
            ? JsonNode.Parse("""
                { "model_type": "mixtral", "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
                  "intermediate_size": 16, "num_local_experts": 4, "num_experts_per_tok": 2, "rope_theta": 1000000.0 }
                """)!.AsObject()
            : JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.ArchitectureGolden(arch), "config.json")))!.AsObject();
        config["vocab_size"] = tokenizer.VocabSize;
        config["tie_word_embeddings"] = true;
        config["max_position_embeddings"] = 512;
        string configPath = Path.Combine(folder, "config.json");
        File.WriteAllText(configPath, config.ToJsonString());

        var architecture = HfArchitecture.For(arch, configPath);
        using var doc = System.Text.Json.JsonDocument.Parse(config.ToJsonString());
        var model = new MoeTransformer(architecture.ReadConfig(doc.RootElement, configPath), seed);
        var tensors = new List<SafetensorsWriter.Tensor>();
        var fused = new Dictionary<string, Parameter>();
        foreach (var p in model.Arena.Parameters)
        {
            int dot = p.Name.LastIndexOf('.');
            string last = p.Name[(dot + 1)..];
            if (arch == "gpt_oss" && p.Name[..dot].EndsWith(".experts", StringComparison.Ordinal))
                fused[p.Name] = p;
            else if (p.Name[..dot].EndsWith(".experts", StringComparison.Ordinal) && last is "w1" or "w2" or "w3")
            {
                int per = p.Length / p.Shape[0];
                for (int j = 0; j < p.Shape[0]; j++)
                    tensors.Add(new(Stored(architecture, $"{p.Name[..dot]}.{j}.{last}.weight"), p.Shape[1..], model.Arena.Values.AsMemory(p.Offset + j * per, per)));
            }
            else tensors.Add(new(Stored(architecture, p.Name), p.Shape, model.Arena.Values.AsMemory(p.Offset, p.Length)));
        }
        foreach (string layer in fused.Keys.Where(n => n.EndsWith(".w1", StringComparison.Ordinal)).Select(n => n[..^".block_sparse_moe.experts.w1".Length]).ToList())
            tensors.AddRange(GptOssExperts(model.Arena.Values, layer, fused));
        SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), tensors);
        return tokenizer;
    }

    /// <summary>
    /// One layer's experts in GPT-OSS's fused checkpoint layout (the inverse of the loader's split):
    /// gate_up_proj [E, D, 2F] with W1 in the even columns and W3 in the odd ones, its bias [E, 2F] likewise,
    /// down_proj [E, F, D] (W2 [E, D, F] transposed) and down_proj_bias [E, D].
    /// </summary>
    private static IEnumerable<SafetensorsWriter.Tensor> GptOssExperts(float[] values, string layer, Dictionary<string, Parameter> fused)
    {
        string at = layer + ".block_sparse_moe.experts.";
        Parameter w1 = fused[at + "w1"], w3 = fused[at + "w3"], w2 = fused[at + "w2"], b1 = fused[at + "b1"], b3 = fused[at + "b3"], b2 = fused[at + "b2"];
        int e = w1.Shape[0], f = w1.Shape[1], d = w1.Shape[2];
        var gateUp = new float[e * d * 2 * f]; // [E, D, 2F]
        var gateUpBias = new float[e * 2 * f]; // [E, 2F]
        var down = new float[e * f * d]; // [E, F, D]
        for (int x = 0; x < e; x++)
            for (int r = 0; r < f; r++)
            {
                gateUpBias[(x * f + r) * 2] = values[b1.Offset + x * f + r];
                gateUpBias[(x * f + r) * 2 + 1] = values[b3.Offset + x * f + r];
                for (int c = 0; c < d; c++)
                {
                    gateUp[(x * d + c) * 2 * f + 2 * r] = values[w1.Offset + (x * f + r) * d + c];
                    gateUp[(x * d + c) * 2 * f + 2 * r + 1] = values[w3.Offset + (x * f + r) * d + c];
                    down[(x * f + r) * d + c] = values[w2.Offset + (x * d + c) * f + r];
                }
            }
        string prefix = layer + ".mlp.experts.";
        yield return new(prefix + "gate_up_proj", [e, d, 2 * f], gateUp);
        yield return new(prefix + "gate_up_proj_bias", [e, 2 * f], gateUpBias);
        yield return new(prefix + "down_proj", [e, f, d], down);
        yield return new(prefix + "down_proj_bias", [e, d], values.AsMemory(b2.Offset, b2.Length));
    }

    private static string Stored(HfArchitecture architecture, string name) => architecture.TensorName?.Invoke(name) ?? name;
}
