using MoeSharp.Autograd;
using MoeSharp.Kernels;
using MoeSharp.Tensors;

namespace MoeSharp.Nn;

/// <summary>The feed-forward half of a Transformer block: a dense MLP, or a mixture of experts.</summary>
public interface IFeedForward
{
    /// <summary>x [N, D] → [N, D].</summary>
    Tensor Forward(Tape tape, Tensor x);
}

/// <summary>
/// A pre-norm decoder-only Transformer LM (Llama layout): token embedding, blocks of
/// x += attn(rms(x)); x += ffn(rms(x)), a final RMSNorm and an LM head. Parameter names follow Hugging Face Llama.
/// </summary>
public sealed class TransformerLm
{
    private readonly Block[] _blocks;

    /// <summary>Builds the model and its parameters; <paramref name="feedForward"/> makes block i's FFN (default: the dense MLP).</summary>
    public TransformerLm(TransformerConfig config, ulong seed = 0, Func<ParameterArena, int, IFeedForward>? feedForward = null)
    {
        config.Validate();
        Config = config;
        Arena = new ParameterArena();
        int hd = config.ResolvedHeadDim, kvh = config.ResolvedKvHeads;
        // GPT-2's scaled init for the projections that write into the residual stream.
        float outStd = config.InitStd / MathF.Sqrt(2f * config.Layers);
        Rope = new RopeTable(hd, config.Context, config.RopeTheta, config.RopeStyle);
        Embed = new Embedding(Arena, "model.embed_tokens", config.Vocab, config.DModel, config.InitStd);
        _blocks = new Block[config.Layers];
        for (int i = 0; i < config.Layers; i++)
        {
            string p = $"model.layers.{i}";
            var attnNorm = new RmsNorm(Arena, p + ".input_layernorm", config.DModel, config.NormEps);
            var attn = new CausalSelfAttention(Arena, p + ".self_attn", config.DModel, config.Heads, kvh, hd, Rope, config.InitStd, outStd);
            var ffnNorm = new RmsNorm(Arena, p + ".post_attention_layernorm", config.DModel, config.NormEps);
            var ffn = feedForward?.Invoke(Arena, i) ?? new Mlp(Arena, p + ".mlp", config.DModel, config.DFF, config.Mlp, config.InitStd, outStd);
            _blocks[i] = new Block(p, attnNorm, attn, ffnNorm, ffn);
        }
        FinalNorm = new RmsNorm(Arena, "model.norm", config.DModel, config.NormEps);
        Head = config.TiedEmbeddings ? null : new Linear(Arena, "lm_head", config.DModel, config.Vocab, initStd: config.InitStd);
        Arena.Build(seed);
    }

    public TransformerConfig Config { get; }
    public ParameterArena Arena { get; }
    public RopeTable Rope { get; }
    public Embedding Embed { get; }
    public RmsNorm FinalNorm { get; }
    public Linear? Head { get; }
    public IReadOnlyList<IFeedForward> FeedForwards => _blocks.Select(b => b.Ffn).ToArray();

    /// <summary>Logits [B·T, V] for ids [B·T] laid out as B sequences of T tokens.</summary>
    public Tensor Forward(Tape tape, int[] ids, int batch)
    {
        int seq = ids.Length / batch;
        if (batch <= 0 || seq * batch != ids.Length)
            throw new ArgumentException($"{ids.Length} token ids do not split into {batch} sequences.");
        if (seq > Config.Context) throw new ArgumentException($"Sequence length {seq} exceeds the model's context {Config.Context}.");
        var x = Embed.Forward(tape, ids);
        foreach (var b in _blocks)
        {
            using (tape.Named(b.Name + ".self_attn"))
                x = tape.Add(x, b.Attn.Forward(tape, b.AttnNorm.Forward(tape, x), batch, seq));
            using (tape.Named(b.Name + ".mlp"))
                x = tape.Add(x, b.Ffn.Forward(tape, b.FfnNorm.Forward(tape, x)));
        }
        return Logits(tape, x);
    }

    /// <summary>Mean next-token cross-entropy of ids [B·T] against targets [B·T].</summary>
    public Tensor Loss(Tape tape, int[] ids, int[] targets, int batch)
    {
        var logits = Forward(tape, ids, batch);
        using (tape.Named("loss"))
            return tape.CrossEntropy(logits, targets);
    }

    /// <summary>Inference on n new tokens of one sequence through the KV cache; logits [n, V].</summary>
    public Tensor Forward(Tape tape, int[] ids, KvCache cache)
    {
        var x = Embed.Forward(tape, ids);
        for (int i = 0; i < _blocks.Length; i++)
        {
            var b = _blocks[i];
            x = tape.Add(x, b.Attn.Forward(tape, b.AttnNorm.Forward(tape, x), cache.Layers[i]));
            x = tape.Add(x, b.Ffn.Forward(tape, b.FfnNorm.Forward(tape, x)));
        }
        return Logits(tape, x);
    }

    /// <summary>A cache sized for the model's context.</summary>
    public KvCache NewCache() => new(Config.Layers, Config.Context, Config.ResolvedKvHeads * Config.ResolvedHeadDim);

    private Tensor Logits(Tape tape, Tensor x)
    {
        using var _ = tape.Named("lm_head");
        var h = FinalNorm.Forward(tape, x);
        return Head is null ? tape.Linear(h, Embed.Weight.Value) : Head.Forward(tape, h);
    }

    private sealed record Block(string Name, RmsNorm AttnNorm, CausalSelfAttention Attn, RmsNorm FfnNorm, IFeedForward Ffn);
}
