using System.Text.Json.Nodes;
using MoeSharp.IO;
using MoeSharp.Models;
using MoeSharp.Text;

namespace MoeSharp.Tests.Models;

/// <summary>
/// A tiny random model of each architecture written as a Hugging Face folder beside a real tokenizer from
/// ../shared/tokenizers (tokenizer.json and tokenizer_config.json copied into a temp folder), with the vocabulary
/// the tokenizer's size and the embeddings tied to keep the files small. The shared folder has no Llama/Mixtral or
/// OLMoE tokenizer, so those get GPT-OSS's (harmony, no template) and DeepSeek-V3's (BOS in its template).
/// </summary>
internal static class TinyChatModels
{
    public static TheoryData<string> Architectures() => ["mixtral", "qwen3_moe", "olmoe", "qwen2_moe"];

    public static string TokenizerOf(string arch) => arch switch
    {
        "mixtral" => "gptoss",
        "olmoe" => "deepseek_v3",
        _ => "qwen3",
    };

    /// <summary>Copies the tokenizer files of <paramref name="arch"/> into <paramref name="folder"/> (the test is skipped when ../shared is absent).</summary>
    public static HfTokenizer WriteTokenizer(string arch, string folder)
    {
        string source = Text.HfTokenizerSharedTests.Folder(TokenizerOf(arch));
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
            : JsonNode.Parse(File.ReadAllText(Path.Combine(ArchitectureGoldenTests.Folder(arch), "config.json")))!.AsObject();
        config["vocab_size"] = tokenizer.VocabSize;
        config["tie_word_embeddings"] = true;
        config["max_position_embeddings"] = 512;
        string configPath = Path.Combine(folder, "config.json");
        File.WriteAllText(configPath, config.ToJsonString());

        var architecture = HfArchitecture.For(arch, configPath);
        using var doc = System.Text.Json.JsonDocument.Parse(config.ToJsonString());
        var model = new MoeTransformer(architecture.ReadConfig(doc.RootElement, configPath), seed);
        var tensors = new List<SafetensorsWriter.Tensor>();
        foreach (var p in model.Arena.Parameters)
        {
            int dot = p.Name.LastIndexOf('.');
            string last = p.Name[(dot + 1)..];
            if (p.Name[..dot].EndsWith(".experts", StringComparison.Ordinal) && last is "w1" or "w2" or "w3")
            {
                int per = p.Length / p.Shape[0];
                for (int j = 0; j < p.Shape[0]; j++)
                    tensors.Add(new(Stored(architecture, $"{p.Name[..dot]}.{j}.{last}.weight"), p.Shape[1..], model.Arena.Values.AsMemory(p.Offset + j * per, per)));
            }
            else tensors.Add(new(Stored(architecture, p.Name), p.Shape, model.Arena.Values.AsMemory(p.Offset, p.Length)));
        }
        SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), tensors);
        return tokenizer;
    }

    private static string Stored(HfArchitecture architecture, string name) => architecture.TensorName?.Invoke(name) ?? name;
}
