using System.Text.Json;
using System.Text.RegularExpressions;
using MoeSharp.Autograd;
using MoeSharp.Formats;
using MoeSharp.IO;
using MoeSharp.Models;

namespace MoeSharp.Tests.IO;

/// <summary>
/// A Mixtral GGUF as llama.cpp's convert_hf_to_gguf.py writes one (arch "llama", q/k rows in interleaved-RoPE order,
/// experts stacked as ffn_*_exps), assembled here from the weights of Mistral's reference implementation
/// (shared/golden/mixtral-ref, whose layout is already interleaved) with the llama.* keys of
/// shared/peer/llamacpp/make_models.py, must reproduce that implementation: logits within 1e-5 and the greedy
/// continuation through the KV cache exactly, as MixtralGoldenTests holds the other two layouts to.
/// </summary>
public class GgufModelTests : TempFolderTest
{
    private static string? Fixture(string name) => TestPaths.Shared("golden/mixtral-ref/" + name);

    private static string GgufTensor(string reference) => reference switch
    {
        "tok_embeddings.weight" => "token_embd.weight",
        "norm.weight" => "output_norm.weight",
        "output.weight" => "output.weight",
        _ => Regex.Replace(reference, @"^layers\.(\d+)\.", "blk.$1.")
            .Replace(".attention_norm.", ".attn_norm.").Replace(".attention.wq.", ".attn_q.").Replace(".attention.wk.", ".attn_k.")
            .Replace(".attention.wv.", ".attn_v.").Replace(".attention.wo.", ".attn_output.").Replace(".feed_forward.gate.", ".ffn_gate_inp."),
    };

    private string WriteMixtralGguf()
    {
        using var source = SafetensorsFile.Open(Fixture("model.reference.safetensors")!);
        var writer = new GgufWriter()
            .Add("general.architecture", GgufValue.Of("llama"))
            .Add("llama.block_count", GgufValue.Of(2u)).Add("llama.context_length", GgufValue.Of(4096u))
            .Add("llama.embedding_length", GgufValue.Of(64u)).Add("llama.feed_forward_length", GgufValue.Of(96u))
            .Add("llama.attention.head_count", GgufValue.Of(4u)).Add("llama.attention.head_count_kv", GgufValue.Of(2u))
            .Add("llama.attention.key_length", GgufValue.Of(16u)).Add("llama.attention.value_length", GgufValue.Of(16u))
            .Add("llama.rope.dimension_count", GgufValue.Of(16u)).Add("llama.rope.freq_base", GgufValue.Of(1e6f))
            .Add("llama.attention.layer_norm_rms_epsilon", GgufValue.Of(1e-5f)).Add("llama.vocab_size", GgufValue.Of(101u))
            .Add("llama.expert_count", GgufValue.Of(4u)).Add("llama.expert_used_count", GgufValue.Of(2u));
        byte[] Bytes(float[] values)
        {
            var b = new byte[values.Length * 4];
            Buffer.BlockCopy(values, 0, b, 0, b.Length);
            return b;
        }
        foreach (var e in source.Entries.Where(e => !e.Name.Contains(".experts.")))
            writer.AddTensor(GgufTensor(e.Name), WeightFormat.F32, e.Shape.Reverse().Select(d => (long)d).ToArray(), Bytes(source.ReadFloat32(e.Name)));
        for (int layer = 0; layer < 2; layer++)
            foreach (var (w, role, rows, cols) in new[] { ("w1", "ffn_gate_exps", 96, 64), ("w3", "ffn_up_exps", 96, 64), ("w2", "ffn_down_exps", 64, 96) })
            {
                var stacked = Enumerable.Range(0, 4).SelectMany(j => source.ReadFloat32($"layers.{layer}.feed_forward.experts.{j}.{w}.weight")).ToArray();
                writer.AddTensor($"blk.{layer}.{role}.weight", WeightFormat.F32, [cols, rows, 4], Bytes(stacked));
            }
        string path = Path.Combine(Folder, "mixtral-f32.gguf");
        writer.Write(path);
        return path;
    }

    [Fact]
    public void AMixtralGgufReproducesTheReferenceImplementation()
    {
        if (Fixture("io.json") is null) Assert.Skip($"shared golden fixtures not found under {TestPaths.SharedRoot}");
        var model = ModelStore.Open(WriteMixtralGguf(), maxContext: 64);
        using var expected = SafetensorsFile.Open(Fixture("expected.safetensors")!);
        var io = JsonDocument.Parse(File.ReadAllText(Fixture("io.json")!)).RootElement;
        int[] Ints(string name) => io.GetProperty(name).EnumerateArray()
            .SelectMany(r => r.ValueKind == JsonValueKind.Array ? r.EnumerateArray().ToArray() : [r]).Select(v => v.GetInt32()).ToArray();
        var tape = new Tape();
        using (tape.NoGrad())
            Numerics.Close(expected.ReadFloat32("logits"), model.Forward(tape, Ints("input"), batch: 2).Logits.Span, 0, 1e-5f, "logits");
        Assert.Equal(Ints("greedy_continuation"), Generator.Greedy(model, Ints("greedy_prompt"), Ints("greedy_continuation").Length));
    }
}
