using MoeSharp.Autograd;
using MoeSharp.Dispatch;
using MoeSharp.Experts;
using MoeSharp.Nn;
using MoeSharp.Routing;
using MoeSharp.Tensors;

namespace MoeSharp.Layers;

/// <summary>
/// Soft MoE (Puigcerver et al. 2023), the mixing that replaces a router when <see cref="RouterKind.Soft"/> is
/// chosen: no token picks an expert; every expert owns S slots, each slot a convex combination of all tokens.
/// Dispatch weights are a softmax over tokens per slot, combine weights a softmax over slots per token; slot inputs
/// Dᵀ·x go through their expert, outputs come back as C·ỹ. Padding tokens (mask false) get no dispatch weight, so
/// they never reach a slot, and are left out of the statistics and the z-loss; their own outputs are still
/// computed, from the slots the real tokens filled. Dimensions: T tokens, D width, E experts, S slots per expert.
/// </summary>
public sealed class SoftMoe : Module
{
    private readonly int[] _slotExpert; // [E·S] the expert owning each slot

    /// <summary>Registers Φ as <c>{name}.weight</c> [E·S, D].</summary>
    public SoftMoe(ParameterArena arena, string name, int experts, int slotsPerExpert, int dim, float initStd) : base(arena, name)
    {
        Experts = experts;
        SlotsPerExpert = slotsPerExpert;
        SlotGate = Param("weight", [experts * slotsPerExpert, dim], Init.Normal(initStd));
        _slotExpert = new int[experts * slotsPerExpert];
        for (int s = 0; s < _slotExpert.Length; s++) _slotExpert[s] = s / slotsPerExpert;
        Slots = new Assignment(experts, 1, _slotExpert);
    }

    /// <summary>Experts E, each owning <see cref="SlotsPerExpert"/> slots.</summary>
    public int Experts { get; }
    /// <summary>Slots S per expert; the layer mixes tokens into E·S slots.</summary>
    public int SlotsPerExpert { get; }

    /// <summary>Φ [E·S, D]: the slot logits are x·Φᵀ.</summary>
    public Parameter SlotGate { get; }

    /// <summary>Slot s goes to expert s / S, always: planned once.</summary>
    private Assignment Slots { get; }

    /// <summary>y [T,D] for x [T,D], the z-loss of the slot logits, and statistics named <paramref name="layer"/>.</summary>
    public (Tensor Output, Dictionary<string, Tensor> Aux, RoutingStats Stats) Forward(Tape tape, Tensor x, ExpertBank bank, bool[]? mask, string layer)
    {
        int slots = _slotExpert.Length, tokens = x.RowCount;
        int real = Balance.Live(mask, tokens);
        if (mask is not null && real == 0) throw new ArgumentException($"MoeLayer {layer}: every token is masked; Soft MoE needs at least one real token to fill its slots.");
        var logits = tape.Linear(x, SlotGate.Value);                     // [T, E·S]
        var dispatchLogits = logits;
        if (mask is not null)
        {
            // exp(−1e9 − max) is exactly 0 in fp32: a padding token's dispatch weight and its gradient vanish.
            var padding = tape.AllocateZeroed(tokens, slots); // [T, E·S]
            for (int t = 0; t < tokens; t++)
                if (!mask[t]) padding.Span.Slice(t * slots, slots).Fill(-1e9f);
            dispatchLogits = tape.Add(logits, padding);
        }
        var dispatch = tape.Transpose(tape.Softmax(tape.Transpose(dispatchLogits))); // [T, E·S], columns sum to 1
        var combine = tape.Softmax(logits);                              // [T, E·S], rows sum to 1
        var slotInputs = tape.MatMul(dispatch, x, transA: true);         // [E·S, D]
        var ones = tape.Allocate(slots);                                 // [E·S] every slot output at weight 1
        ones.Span.Fill(1f);
        var slotOutputs = tape.ExpertFfn(slotInputs, Slots, ones, bank); // [E·S, D]
        var y = tape.MatMul(combine, slotOutputs);                       // [T, D]
        // Statistics: each token counts for the expert that owns its largest combine weight.
        var counts = new int[Experts];      // [E]
        var importance = new float[Experts]; // [E]
        for (int t = 0; t < tokens; t++)
        {
            if (mask is not null && !mask[t]) continue;
            var row = combine.Span.Slice(t * slots, slots);
            counts[_slotExpert[TensorPrimitives.IndexOfMax(row)]]++;
            for (int s = 0; s < slots; s++) importance[_slotExpert[s]] += row[s] / real;
        }
        var aux = new Dictionary<string, Tensor>(1) { [Balance.ZLossName] = tape.ZLoss(logits, mask) };
        return (y, aux, new RoutingStats
        {
            Layer = layer, Tokens = real, TokensPerExpert = counts, Importance = importance, LoadCv = RoutingStats.Cv(counts),
        });
    }
}
