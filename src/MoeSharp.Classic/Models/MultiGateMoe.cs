using MoeSharp.Autograd;
using MoeSharp.Nn;
using MoeSharp.Tensors;

namespace MoeSharp.Classic.Models;

/// <summary>
/// Sizes of the multi-task models, validated by <see cref="Validate"/>, which names the bad field. D inputs, T tasks,
/// E experts of width H, towers of width Th; the shared-bottom baseline has one bottom layer of width B.
/// </summary>
public sealed record MultiTaskOptions
{
    /// <summary>Input width D.</summary>
    public int Inputs { get; init; }
    /// <summary>Number of tasks T, each with its own tower (and, in MMoE, its own gate).</summary>
    public int Tasks { get; init; } = 2;
    /// <summary>Number of experts E shared by the tasks.</summary>
    public int Experts { get; init; } = 8;
    /// <summary>Hidden width H of each expert.</summary>
    public int ExpertHidden { get; init; } = 16;
    /// <summary>Hidden width Th of each task's tower.</summary>
    public int TowerHidden { get; init; } = 8;

    /// <summary>Width B of the shared-bottom baseline's bottom layer; 0 matches MMoE's expert width E·H.</summary>
    public int BottomHidden { get; init; }

    /// <summary>Seeds the initial weights.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary><see cref="BottomHidden"/> with 0 resolved to E·H.</summary>
    public int ResolvedBottom => BottomHidden > 0 ? BottomHidden : Experts * ExpertHidden;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first field out of range.</summary>
    public void Validate()
    {
        static void Positive(int value, string field)
        {
            if (value <= 0) throw new ArgumentException($"MultiTaskOptions.{field}: must be positive, got {value}.", field);
        }
        Positive(Inputs, nameof(Inputs));
        Positive(Tasks, nameof(Tasks));
        Positive(Experts, nameof(Experts));
        Positive(ExpertHidden, nameof(ExpertHidden));
        Positive(TowerHidden, nameof(TowerHidden));
        if (BottomHidden < 0) throw new ArgumentException($"MultiTaskOptions.BottomHidden: must be 0 (match MMoE) or positive, got {BottomHidden}.", nameof(BottomHidden));
    }
}

/// <summary>A model with one scalar regression output per task, trained by <c>MultiTaskTrainer</c> (Training).</summary>
public interface IMultiTaskModel
{
    /// <summary>Every parameter of the model, with its gradients, for the optimizer.</summary>
    ParameterArena Arena { get; }
    /// <summary>Number of tasks T: the length of what <see cref="Forward"/> returns.</summary>
    int Tasks { get; }

    /// <summary>x [N,D] → one prediction [N,1] per task.</summary>
    IReadOnlyList<Tensor> Forward(Tape tape, Tensor x);
}

/// <summary>A task's tower: out(gelu(hidden(f))), f [N,H] → [N,1].</summary>
public sealed class Tower : Module
{
    /// <summary>A tower named <paramref name="name"/> in <paramref name="arena"/>, from <paramref name="inputs"/> features through <paramref name="hidden"/> units to one output.</summary>
    public Tower(ParameterArena arena, string name, int inputs, int hidden) : base(arena, name)
    {
        Hidden = new Linear(arena, name + ".hidden", inputs, hidden, bias: true, initStd: 1f / MathF.Sqrt(inputs));
        Out = new Linear(arena, name + ".out", hidden, 1, bias: true, initStd: 1f / MathF.Sqrt(hidden));
    }

    /// <summary>[Th, H] and [Th]: the hidden layer.</summary>
    public Linear Hidden { get; }
    /// <summary>[1, Th] and [1]: the scalar output.</summary>
    public Linear Out { get; }

    /// <summary>f [N, H] → the task's prediction [N, 1].</summary>
    public Tensor Forward(Tape tape, Tensor f) => Out.Forward(tape, tape.Gelu(Hidden.Forward(tape, f)));
}

/// <summary>
/// Multi-gate mixture of experts (Ma et al., KDD 2018): E experts shared by all tasks, each a GELU layer
/// D → H, stored stacked as one [E·H, D] projection; one softmax gate per task, g_t(x) = softmax(W_t·x + b_t) [N,E];
/// task t's tower sees f_t = Σ_e g_t,e·expert_e(x) [N,H]. (The paper's experts use ReLU; GELU is this library's
/// MLP activation and keeps the gradient check free of kinks.)
/// </summary>
public sealed class MultiGateMoe : IMultiTaskModel
{
    /// <summary>An MMoE for <paramref name="options"/> (validated first), weights drawn from its seed.</summary>
    public MultiGateMoe(MultiTaskOptions options)
    {
        options.Validate();
        Options = options;
        Arena = new ParameterArena();
        ExpertLayer = new Linear(Arena, "experts", options.Inputs, options.Experts * options.ExpertHidden, bias: true, initStd: 1f / MathF.Sqrt(options.Inputs));
        Gates = Enumerable.Range(0, options.Tasks)
            .Select(t => new Linear(Arena, $"gates.{t}", options.Inputs, options.Experts, bias: true, initStd: 0.1f / MathF.Sqrt(options.Inputs))).ToArray();
        Towers = Enumerable.Range(0, options.Tasks).Select(t => new Tower(Arena, $"towers.{t}", options.ExpertHidden, options.TowerHidden)).ToArray();
        Arena.Build(options.Seed);
    }

    /// <summary>The sizes it was built with.</summary>
    public MultiTaskOptions Options { get; }
    /// <inheritdoc/>
    public ParameterArena Arena { get; }
    /// <inheritdoc/>
    public int Tasks => Options.Tasks;

    /// <summary>[E·H, D] and [E·H]: expert e owns rows e·H .. e·H + H − 1.</summary>
    public Linear ExpertLayer { get; }

    /// <summary>Per task [E, D] and [E].</summary>
    public IReadOnlyList<Linear> Gates { get; }

    /// <summary>One tower per task, reading that task's gated mix of the experts.</summary>
    public IReadOnlyList<Tower> Towers { get; }

    /// <inheritdoc/>
    public IReadOnlyList<Tensor> Forward(Tape tape, Tensor x)
    {
        var h = tape.Gelu(ExpertLayer.Forward(tape, x)); // [N, E·H]
        var outputs = new Tensor[Tasks];
        for (int t = 0; t < Tasks; t++)
        {
            var g = tape.Softmax(Gates[t].Forward(tape, x)); // [N,E]
            outputs[t] = Towers[t].Forward(tape, tape.MixRows(g, h)); // [N,H] → [N,1]
        }
        return outputs;
    }

    /// <summary>Task <paramref name="task"/>'s gate weights [N,E] for x [N,D].</summary>
    public float[] GateWeights(Tensor x, int task)
    {
        var tape = new Tape();
        using (tape.NoGrad()) return tape.Softmax(Gates[task].Forward(tape, x)).ToArray();
    }
}

/// <summary>
/// The shared-bottom baseline (Caruana 1997): one GELU bottom layer D → B shared by every task, then a tower per task.
/// </summary>
public sealed class SharedBottom : IMultiTaskModel
{
    /// <summary>The shared-bottom baseline for <paramref name="options"/> (validated first), weights drawn from its seed.</summary>
    public SharedBottom(MultiTaskOptions options)
    {
        options.Validate();
        Options = options;
        Arena = new ParameterArena();
        Bottom = new Linear(Arena, "bottom", options.Inputs, options.ResolvedBottom, bias: true, initStd: 1f / MathF.Sqrt(options.Inputs));
        Towers = Enumerable.Range(0, options.Tasks).Select(t => new Tower(Arena, $"towers.{t}", options.ResolvedBottom, options.TowerHidden)).ToArray();
        Arena.Build(options.Seed);
    }

    /// <summary>The sizes it was built with.</summary>
    public MultiTaskOptions Options { get; }
    /// <inheritdoc/>
    public ParameterArena Arena { get; }
    /// <inheritdoc/>
    public int Tasks => Options.Tasks;

    /// <summary>[B, D] and [B].</summary>
    public Linear Bottom { get; }

    /// <summary>One tower per task, reading the bottom layer.</summary>
    public IReadOnlyList<Tower> Towers { get; }

    /// <inheritdoc/>
    public IReadOnlyList<Tensor> Forward(Tape tape, Tensor x)
    {
        var h = tape.Gelu(Bottom.Forward(tape, x)); // [N,B]
        return Towers.Select(t => t.Forward(tape, h)).ToArray();
    }
}
