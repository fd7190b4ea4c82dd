using MoeSharp.Autograd;
using MoeSharp.Kernels;
using Embedding = MoeSharp.Nn.Embedding;
using MoeSharp.Layers;
using MoeSharp.Nn;
using MoeSharp.Routing;
using MoeSharp.Tensors;

namespace MoeSharp.Models;

/// <summary>What a forward pass gives back: logits [B·T, V], the summed weighted auxiliary loss, and each MoE layer's result.</summary>
public sealed record LmOutput(Tensor Logits, Tensor? AuxLoss, IReadOnlyList<MoeResult> Moe);

/// <summary>
/// What a batched inference pass (<see cref="MoeTransformer.ForwardBatch"/>) gives back: logits [S, V] of each
/// sequence's last new row, the summed weighted auxiliary loss, the MoE layers' results (one per layer, or one per
/// layer and sequence for a layer whose routing couples rows, see <see cref="MoeTransformer.ForwardBatch"/>), and
/// per sequence the experts its last row was routed to in each MoE layer.
/// </summary>
public sealed record BatchOutput(Tensor Logits, Tensor? AuxLoss, IReadOnlyList<MoeResult> Moe, IReadOnlyList<IReadOnlyList<int[]>> Experts);

/// <summary>
/// A pre-norm decoder-only Transformer LM (Llama/Mixtral layout): token embedding, blocks of
/// x += attn(rms(x)); x += ffn(rms(x)), a final RMSNorm and an LM head. A block's FFN is a dense SwiGLU/GELU MLP
/// or, per <see cref="ModelConfig.IsMoeLayer"/>, a <see cref="MoeLayer"/>. Parameter names follow Hugging Face
/// (Llama for dense blocks, Mixtral's block_sparse_moe for MoE blocks), so checkpoints map onto that ecosystem.
/// </summary>
/// <remarks>
/// Built with an <see cref="IWeightSource"/>, the model is for inference: the parameters the source stores (see
/// <see cref="Storable"/>) compute with their stored weights in place and take no arena space; every other parameter
/// is left zero for the loader to fill. Such a model owns the source, so dispose it to release mapped files.
/// </remarks>
public sealed class MoeTransformer : IDisposable
{
    private readonly Block[] _blocks;
    private readonly IWeightSource? _weights;

    /// <summary>Builds the model for <paramref name="config"/> (validated first) with weights drawn from <paramref name="seed"/>.</summary>
    public MoeTransformer(ModelConfig config, ulong seed = 0) : this(config, seed, null) { }

    /// <summary>
    /// Builds the model for <paramref name="config"/> for inference over <paramref name="weights"/>, which the model then
    /// owns: each of <see cref="Storable"/> that the source stores uses its stored weight; the arena holds the rest,
    /// zero (not drawn at random) until the caller fills it from the same checkpoint.
    /// </summary>
    public MoeTransformer(ModelConfig config, IWeightSource weights) : this(config, 0, weights ?? throw new ArgumentNullException(nameof(weights))) { }

    private MoeTransformer(ModelConfig config, ulong seed, IWeightSource? weights)
    {
        config.Validate();
        Config = config;
        Arena = new ParameterArena();
        int hd = config.ResolvedHeadDim, kvh = config.ResolvedKvHeads;
        // GPT-2's scaled init for the projections that write into the residual stream.
        float outStd = config.InitStd / MathF.Sqrt(2f * config.Layers);
        Rope = new RopeTable(config.RopeDim, config.Context, config.RopeTheta, config.RopeStyle, config.Yarn);
        Embed = new Embedding(Arena, "model.embed_tokens", config.Vocab, config.DModel, config.InitStd);
        _blocks = new Block[config.Layers];
        var moe = config.ResolvedMoe;
        for (int i = 0; i < config.Layers; i++)
        {
            string p = $"model.layers.{i}";
            var attnNorm = new RmsNorm(Arena, p + ".input_layernorm", config.DModel, config.NormEps);
            ISelfAttention attn = config.Mla is { } mla
                ? new LatentAttention(Arena, p + ".self_attn", config.DModel, config.Heads, mla, Rope, config.InitStd, outStd, config.NormEps)
                : new CausalSelfAttention(Arena, p + ".self_attn", config.DModel, config.Heads, kvh, hd, Rope, config.InitStd, outStd,
                    config.AttentionBias, config.QkNorm, config.NormEps, config.AttentionOutBias, config.AttentionSinks, config.WindowOf(i));
            var ffnNorm = new RmsNorm(Arena, p + ".post_attention_layernorm", config.DModel, config.NormEps);
            if (config.IsMoeLayer(i))
                _blocks[i] = new Block(p, attnNorm, attn, ffnNorm, null, new MoeLayer(moe! with { Seed = moe.Seed + (ulong)i }, Arena, p + ".block_sparse_moe"));
            else
                _blocks[i] = new Block(p, attnNorm, attn, ffnNorm, new Mlp(Arena, p + ".mlp", config.DModel, config.DFF, config.Mlp, config.InitStd, outStd), null);
        }
        MoeLayers = _blocks.Where(b => b.Moe is not null).Select(b => b.Moe!).ToArray();
        FinalNorm = new RmsNorm(Arena, "model.norm", config.DModel, config.NormEps);
        Head = config.TiedEmbeddings ? null : new Linear(Arena, "lm_head", config.DModel, config.Vocab, initStd: config.InitStd);
        Storable = StorableParameters();
        if (weights is not null)
            foreach (var p in Storable)
                if (weights.Stored(p) is { } w) Arena.Store(p, w);
        Arena.Build(seed, initialize: weights is null);
        _weights = weights;
    }

    /// <summary>
    /// The parameters that may compute with a stored weight: the embedding, the LM head, every attention projection
    /// (but latent attention's kv_b_proj, which decode absorbs into the query in fp32), the dense MLPs, and each token-routed
    /// MoE layer's stacked experts and shared expert. Norms, routers, biases and sinks always stay fp32.
    /// </summary>
    public IReadOnlyList<Parameter> Storable { get; }

    /// <summary>Releases the weight source the model was built over (its memory-mapped files); a model built from a seed holds none.</summary>
    public void Dispose()
    {
        ExpertCache?.Dispose();
        _weights?.Dispose();
    }

    /// <summary>The cache the routed experts are paged through (<c>ModelLoadOptions.MaxMemoryBytes</c>), or null when they are resident.</summary>
    public Experts.ExpertCache? ExpertCache { get; internal set; }

    private Parameter[] StorableParameters()
    {
        var list = new List<Parameter> { Embed.Weight };
        void Add(Linear? l)
        {
            if (l is not null) list.Add(l.Weight);
        }
        void AddMlp(Mlp? m)
        {
            if (m is null) return;
            Add(m.Gate);
            Add(m.Up);
            Add(m.Down);
        }
        foreach (var b in _blocks)
        {
            switch (b.Attn)
            {
                case CausalSelfAttention a:
                    Add(a.Q);
                    Add(a.K);
                    Add(a.V);
                    Add(a.O);
                    break;
                case LatentAttention a:
                    Add(a.QA);
                    Add(a.QB);
                    Add(a.Q);
                    Add(a.KvA);
                    Add(a.O);
                    break;
            }
            AddMlp(b.Mlp);
            if (b.Moe is { } moe)
            {
                if (moe.Router is not null)
                {
                    list.Add(moe.Bank.W1);
                    if (moe.Bank.W3 is not null) list.Add(moe.Bank.W3);
                    list.Add(moe.Bank.W2);
                }
                AddMlp(moe.Shared);
            }
        }
        Add(Head);
        return [.. list];
    }

    /// <summary>The sizes this model was built with.</summary>
    public ModelConfig Config { get; }
    /// <summary>Every weight in one flat buffer (gradients in a second), named as Hugging Face names them.</summary>
    public ParameterArena Arena { get; }
    /// <summary>The RoPE cos/sin table [Context, RopeDim / 2], shared by every attention layer.</summary>
    internal RopeTable Rope { get; }
    /// <summary>The token embedding [V, D] (model.embed_tokens).</summary>
    public Embedding Embed { get; }
    /// <summary>The RMSNorm before the LM head (model.norm).</summary>
    public RmsNorm FinalNorm { get; }
    /// <summary>The LM head [D, V] (lm_head); null when the embedding is tied.</summary>
    public Linear? Head { get; }

    /// <summary>The MoE layers, in block order.</summary>
    public IReadOnlyList<MoeLayer> MoeLayers { get; }

    /// <summary>Parameters touched per token: everything except the experts a token does not use.</summary>
    public long ActiveParameters
    {
        get
        {
            long total = Arena.TotalElements;
            foreach (var m in MoeLayers)
            {
                var o = m.Options;
                int used = Math.Min(o.TopK, o.Experts);
                total -= (o.Experts - used) * m.Bank.ParametersPerExpert;
            }
            return total;
        }
    }

    /// <summary>
    /// ids [B·T] laid out as B sequences of T tokens → logits [B·T, V] and the MoE layers' auxiliary losses and
    /// routing statistics. <paramref name="step"/> seeds routing noise, so a resumed run draws the same noise.
    /// </summary>
    public LmOutput Forward(Tape tape, int[] ids, int batch, bool training = false, long step = 0)
    {
        int seq = ids.Length / Math.Max(1, batch);
        if (batch <= 0 || seq * batch != ids.Length)
            throw new ArgumentException($"{ids.Length} token ids do not split into {batch} sequences.");
        if (seq > Config.Context) throw new ArgumentException($"Sequence length {seq} exceeds the model's context {Config.Context}.");
        var context = new RoutingContext { TokenIds = ids, Sequences = batch, Training = training, Step = step };
        var x = Embed.Forward(tape, ids);
        CheckFinite(tape, x, "model.embed_tokens");
        var results = new List<MoeResult>();
        Tensor? aux = null;
        foreach (var b in _blocks)
        {
            using (tape.Named(b.Name + ".self_attn"))
                x = tape.Add(x, b.Attn.Forward(tape, b.AttnNorm.Forward(tape, x), batch, seq));
            CheckFinite(tape, x, b.Name + ".self_attn");
            using (tape.Named(b.FfnName))
                x = tape.Add(x, Ffn(tape, b, b.FfnNorm.Forward(tape, x), context, results, ref aux));
            CheckFinite(tape, x, b.FfnName);
        }
        return new LmOutput(Logits(tape, x), aux, results);
    }

    /// <summary>Mean next-token cross-entropy of ids against targets, plus the weighted auxiliary losses.</summary>
    public (Tensor Loss, Tensor CrossEntropy, LmOutput Output) Loss(Tape tape, int[] ids, int[] targets, int batch, bool training = false, long step = 0)
    {
        var output = Forward(tape, ids, batch, training, step);
        Tensor ce;
        using (tape.Named("loss")) ce = tape.CrossEntropy(output.Logits, targets);
        return (output.AuxLoss is null ? ce : tape.Add(ce, output.AuxLoss), ce, output);
    }

    /// <summary>Inference on n new tokens of one sequence through the KV cache; logits [n, V].</summary>
    public LmOutput Forward(Tape tape, int[] ids, KvCache cache)
    {
        var context = new RoutingContext { TokenIds = ids };
        var x = Embed.Forward(tape, ids);
        CheckFinite(tape, x, "model.embed_tokens");
        var results = new List<MoeResult>();
        Tensor? aux = null;
        for (int i = 0; i < _blocks.Length; i++)
        {
            var b = _blocks[i];
            x = tape.Add(x, b.Attn.Forward(tape, b.AttnNorm.Forward(tape, x), cache.Layers[i]));
            CheckFinite(tape, x, b.Name + ".self_attn");
            x = tape.Add(x, Ffn(tape, b, b.FfnNorm.Forward(tape, x), context, results, ref aux));
            CheckFinite(tape, x, b.FfnName);
        }
        return new LmOutput(Logits(tape, x), aux, results);
    }

    /// <summary>
    /// One inference pass for S sequences: sequence s brings ids[s] (one or more new tokens) at positions
    /// caches[s].Length.. and appends them to caches[s]. Embedding, norms, projections, routers and experts run on
    /// all rows concatenated [N = Σ n_s, D], so each selected expert's weights are read once for all the rows routed
    /// to it; attention runs per sequence against its own cache. Logits are computed for each sequence's last row
    /// only ([S, V]). An MoE layer whose routing couples the rows it is given (a capacity factor, expert choice,
    /// Soft MoE, Sinkhorn) runs once per sequence instead, so that a sequence is routed as it would be alone.
    /// </summary>
    public BatchOutput ForwardBatch(Tape tape, IReadOnlyList<int[]> ids, IReadOnlyList<KvCache> caches)
    {
        int sequences = ids.Count, width = Config.DModel;
        if (sequences == 0 || caches.Count != sequences)
            throw new ArgumentException($"A batched forward needs at least one sequence and one KV cache per sequence; got {sequences} sequences and {caches.Count} caches.");
        var offsets = new int[sequences + 1]; // [S+1] first row of each sequence
        for (int s = 0; s < sequences; s++)
        {
            if (ids[s].Length == 0) throw new ArgumentException($"Sequence {s} of the batch brings no tokens; each brings at least one.", nameof(ids));
            if (caches[s].Layers.Length != _blocks.Length)
                throw new ArgumentException($"The KV cache of sequence {s} has {caches[s].Layers.Length} layers; the model has {_blocks.Length}.", nameof(caches));
            offsets[s + 1] = offsets[s] + ids[s].Length;
        }
        var all = new int[offsets[^1]]; // [N]
        for (int s = 0; s < sequences; s++) ids[s].CopyTo(all, offsets[s]);
        var experts = new List<int[]>[sequences]; // per sequence, per MoE layer
        for (int s = 0; s < sequences; s++) experts[s] = new List<int[]>(MoeLayers.Count);
        var layerCaches = new KvCache.Layer[sequences];
        using var promptScope = tape.PromptRows(PromptRows(ids, offsets));
        var x = Embed.Forward(tape, all); // [N, D]
        CheckFinite(tape, x, "model.embed_tokens");
        DecodeProfile.Charge(DecodeProfile.Op.Embedding);
        var results = new List<MoeResult>();
        Tensor? aux = null;
        for (int i = 0; i < _blocks.Length; i++)
        {
            var b = _blocks[i];
            for (int s = 0; s < sequences; s++) layerCaches[s] = caches[s].Layers[i];
            var h = b.AttnNorm.Forward(tape, x); // [N, D]
            DecodeProfile.Charge(DecodeProfile.Op.Norms);
            var attn = b.Attn.Forward(tape, h, layerCaches, offsets); // [N, D]
            DecodeProfile.Charge(DecodeProfile.Op.AttentionCore, DecodeProfile.Op.AttentionProjections);
            x = tape.Add(x, attn);
            CheckFinite(tape, x, b.Name + ".self_attn");
            DecodeProfile.Charge(DecodeProfile.Op.Residual);
            h = b.FfnNorm.Forward(tape, x);
            DecodeProfile.Charge(DecodeProfile.Op.Norms);
            var ffn = BatchFfn(tape, b, h, all, ids, offsets, results, experts, ref aux); // [N, D]
            DecodeProfile.Charge(DecodeProfile.Op.RouterDispatchCombine, DecodeProfile.Op.ExpertMatVecs);
            x = tape.Add(x, ffn);
            CheckFinite(tape, x, b.FfnName);
            DecodeProfile.Charge(DecodeProfile.Op.Residual);
        }
        var last = tape.Allocate(sequences, width); // [S, D]
        for (int s = 0; s < sequences; s++) x.Span.Slice((offsets[s + 1] - 1) * width, width).CopyTo(last.Span.Slice(s * width, width));
        bool[]? lastPrompt = null; // [S] a prompt's last row is a prompt row too
        for (int s = 0; s < sequences; s++)
            if (ids[s].Length > 1) (lastPrompt ??= new bool[sequences])[s] = true;
        using (tape.PromptRows(lastPrompt))
        {
            var logits = Logits(tape, last); // [S, V]
            DecodeProfile.Charge(DecodeProfile.Op.Norms, DecodeProfile.Op.LmHead);
            return new BatchOutput(logits, aux, results, experts);
        }
    }

    /// <summary>
    /// True when an MoE layer routes each row on its own at inference: capacity limits, expert choice, Soft MoE's
    /// slots and Sinkhorn's balanced plan all depend on the other rows of the call.
    /// </summary>
    private static bool RoutesRowsAlone(MoeOptions o) =>
        o.CapacityFactor == 0 && o.Router is not (RouterKind.ExpertChoice or RouterKind.Soft or RouterKind.Sinkhorn);

    private static Tensor BatchFfn(Tape tape, Block b, Tensor h, int[] all, IReadOnlyList<int[]> ids, int[] offsets, List<MoeResult> results,
        List<int[]>[] experts, ref Tensor? aux)
    {
        if (b.Mlp is not null) return b.Mlp.Forward(tape, h);
        var moe = b.Moe!;
        if (RoutesRowsAlone(moe.Options))
        {
            var r = moe.Forward(tape, h, new RoutingContext { TokenIds = all });
            Collect(tape, r, results, ref aux);
            for (int s = 0; s < experts.Length; s++) experts[s].Add(RowExperts(r.Routing, offsets[s + 1] - 1));
            return r.Output;
        }
        var y = tape.Allocate(h.RowCount, h.Dim(1)); // [N, D]
        for (int s = 0; s < experts.Length; s++)
        {
            int r0 = offsets[s], rows = offsets[s + 1] - r0;
            MoeResult r;
            using (tape.PromptRows(PromptRows([ids[s]], [0, rows])))
                r = moe.Forward(tape, h.Rows(r0, rows), new RoutingContext { TokenIds = ids[s] });
            Collect(tape, r, results, ref aux);
            experts[s].Add(RowExperts(r.Routing, rows - 1));
            r.Output.Span.CopyTo(y.Span.Slice(r0 * h.Dim(1), rows * h.Dim(1)));
        }
        return y;
    }

    /// <summary>
    /// [N] whether each row belongs to a sequence that brings more than one token (a prompt, or a re-encoded window),
    /// or null when none does: stored weights run those rows through their prefill product, a choice each sequence
    /// makes from its own input, so it gets the same arithmetic batched or alone.
    /// </summary>
    private static bool[]? PromptRows(IReadOnlyList<int[]> ids, int[] offsets)
    {
        bool[]? prompt = null;
        for (int s = 0; s < ids.Count; s++)
            if (ids[s].Length > 1) (prompt ??= new bool[offsets[^1]]).AsSpan(offsets[s], ids[s].Length).Fill(true);
        return prompt;
    }

    /// <summary>The experts row <paramref name="row"/> was routed to, in the router's order; none without a token router (Soft MoE).</summary>
    internal static int[] RowExperts(RouterOutput? r, int row) =>
        r is null ? [] : r.PairExpert[r.TokenOffsets[row]..r.TokenOffsets[row + 1]];

    private static void Collect(Tape tape, MoeResult r, List<MoeResult> results, ref Tensor? aux)
    {
        results.Add(r);
        if (r.AuxLoss is not null) aux = aux is null ? r.AuxLoss : tape.Add(aux, r.AuxLoss);
    }

    /// <summary>A cache for <paramref name="capacity"/> positions (default: the model's context).</summary>
    public KvCache NewCache(int? capacity = null)
    {
        int n = capacity ?? Config.Context;
        if (n <= 0 || n > Config.Context) throw new ArgumentOutOfRangeException(nameof(capacity), $"A KV cache holds 1..{Config.Context} positions, asked for {n}.");
        var (key, value) = CacheWidths();
        return new(Config.Layers, n, key, value);
    }

    /// <summary>Bytes <see cref="NewCache"/>(<paramref name="capacity"/>) takes, without making it: what admitting a request costs.</summary>
    public long CacheBytes(int capacity)
    {
        var (key, value) = CacheWidths();
        return (long)capacity * Config.Layers * (key + value) * sizeof(float);
    }

    /// <summary>
    /// Floats per position and layer of keys and of values. Latent attention caches [latent | rotary key] per
    /// position and no values (see LatentAttention).
    /// </summary>
    private (int Key, int Value) CacheWidths()
    {
        if (Config.Mla is { } mla) return (mla.KvLoraRank + mla.QkRopeHeadDim, 0);
        int width = Config.ResolvedKvHeads * Config.ResolvedHeadDim;
        return (width, width);
    }

    private static Tensor Ffn(Tape tape, Block b, Tensor h, RoutingContext context, List<MoeResult> results, ref Tensor? aux)
    {
        if (b.Mlp is not null) return b.Mlp.Forward(tape, h);
        var r = b.Moe!.Forward(tape, h, context);
        Collect(tape, r, results, ref aux);
        return r.Output;
    }

    private Tensor Logits(Tape tape, Tensor x)
    {
        using var _ = tape.Named("lm_head");
        var h = FinalNorm.Forward(tape, x);
        var logits = Head is null ? Embed.Logits(tape, h) : Head.Forward(tape, h);
        CheckFinite(tape, logits, "lm_head");
        return logits;
    }

    /// <summary>
    /// Inference (nothing recorded) cannot trace a NaN back through the tape afterwards the way training does
    /// (<see cref="Tape.FirstNonFinite"/>), so each sublayer's output [n, D] is checked as it is made; the check is
    /// O(n·D) against the sublayer's O(n·D²). The first layer to fail is the one at fault.
    /// </summary>
    private static void CheckFinite(Tape tape, Tensor x, string layer)
    {
        if (tape.IsRecording) return;
        var values = x.Span;
        if (TensorPrimitives.IsFiniteAll(values)) return;
        int at = 0;
        while (float.IsFinite(values[at])) at++;
        int width = x.Shape[^1];
        throw new NonFiniteException($"Inference produced {values[at]} in the output of '{layer}' (token {at / width} of {values.Length / width}) from a finite input: the layer's weights or activations are beyond float32's range.");
    }

    private sealed record Block(string Name, RmsNorm AttnNorm, ISelfAttention Attn, RmsNorm FfnNorm, Mlp? Mlp, MoeLayer? Moe)
    {
        public string FfnName { get; } = Name + (Mlp is null ? ".block_sparse_moe" : ".mlp");
    }
}
