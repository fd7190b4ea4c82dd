using MoeSharp.Tensors;

namespace MoeSharp.Autograd;

/// <summary>
/// Reverse-mode autodiff over coarse ops. Each op (one file each, under Autograd/) computes its forward, and when
/// recording and any input needs a gradient, records a <see cref="Node"/> whose backward adds into the inputs'
/// gradients. Activations and their gradients are rented from the tape's pool and handed back by
/// <see cref="Reset"/>, so a training step after the first allocates nothing.
/// </summary>
public sealed partial class Tape
{
    private readonly List<Node> _nodes = [];
    private readonly List<Tensor> _owned = [];
    private readonly List<Tensor> _gradHolders = [];
    private readonly TensorPool _pool = new();
    private readonly Dictionary<int, Stack<int[]>> _freeInts = [];
    private readonly List<int[]> _ownedInts = [];
    private readonly Stack<string> _scopes = new();
    private int _noGrad;

    /// <summary>
    /// Counts <see cref="Reset"/> calls. Buffers that a recorded op keeps for its backward (an MoE layer's
    /// workspace) are leased at one generation and may be reused once the generation has moved on.
    /// </summary>
    internal long Generation { get; private set; }

    /// <summary>False inside a <see cref="NoGrad"/> scope: ops compute but record nothing.</summary>
    public bool IsRecording => _noGrad == 0;

    /// <summary>The recorded ops, in forward order.</summary>
    internal IReadOnlyList<Node> Nodes => _nodes;

    /// <summary>Inference: ops run, nothing is recorded, no gradient buffers are made.</summary>
    public Scope NoGrad()
    {
        _noGrad++;
        return new Scope(this, named: false);
    }

    /// <summary>Names the layer that records the next ops, so diagnostics (a NaN, say) can point at it.</summary>
    public Scope Named(string name)
    {
        _scopes.Push(name);
        return new Scope(this, named: true);
    }

    /// <summary>The innermost <see cref="Named"/> label, or "" at top level.</summary>
    public string CurrentName => _scopes.Count == 0 ? "" : _scopes.Peek();

    /// <summary>A tensor owned by this tape until <see cref="Reset"/>; contents uninitialised.</summary>
    public Tensor Allocate(params ReadOnlySpan<int> shape)
    {
        var t = _pool.Rent(shape);
        _owned.Add(t);
        return t;
    }

    /// <summary>A zero-filled tensor owned by this tape until <see cref="Reset"/>.</summary>
    public Tensor AllocateZeroed(params ReadOnlySpan<int> shape)
    {
        var t = Allocate(shape);
        t.Span.Clear();
        return t;
    }

    /// <summary>
    /// An index array of exactly <paramref name="length"/> elements owned by this tape until <see cref="Reset"/>;
    /// contents uninitialised. Routing indices live here because the backward reads them.
    /// </summary>
    internal int[] RentInts(int length)
    {
        var a = _freeInts.TryGetValue(length, out var stack) && stack.Count > 0 ? stack.Pop() : new int[length];
        _ownedInts.Add(a);
        return a;
    }

    /// <summary>True when an op on these inputs must be recorded.</summary>
    internal bool Tracks(Tensor a) => IsRecording && a.RequiresGrad;
    internal bool Tracks(Tensor a, Tensor b) => IsRecording && (a.RequiresGrad || b.RequiresGrad);
    internal bool Tracks(Tensor a, Tensor b, Tensor? c) => IsRecording && (a.RequiresGrad || b.RequiresGrad || c is { RequiresGrad: true });

    /// <summary>An op output: tape-owned, flagged for gradients when the op is recorded.</summary>
    internal Tensor Output(bool tracked, params ReadOnlySpan<int> shape)
    {
        var t = Allocate(shape);
        t.RequiresGrad = tracked;
        return t;
    }

    internal void Record(Node node)
    {
        node.Label = CurrentName;
        _nodes.Add(node);
        Profile?.Forward(node.Op);
    }

    /// <summary>When set, accumulates time per op for forward and backward (see <see cref="OpProfile"/>).</summary>
    internal OpProfile? Profile { get; set; }

    /// <summary>The gradient buffer of <paramref name="t"/>, created zeroed on first use.</summary>
    internal Span<float> GradOf(Tensor t)
    {
        if (t.Grad is null)
        {
            var g = Allocate(t.Shape);
            g.Span.Clear();
            t.Grad = g;
            _gradHolders.Add(t);
        }
        return t.Grad.Span;
    }

    /// <summary>
    /// The gradient buffer of <paramref name="t"/> for an op that writes every element of it. On the first
    /// contribution the buffer is new and left uncleared, and <paramref name="overwrite"/> tells the op to write rather
    /// than add: y + 0 = y, so the values are those of clearing and adding, without a pass over the buffer to clear it
    /// (only a zero's sign may differ). Later contributions get the buffer to add into, as <see cref="GradOf"/>.
    /// </summary>
    internal Span<float> GradForWrite(Tensor t, out bool overwrite)
    {
        overwrite = t.Grad is null;
        if (!overwrite) return GradOf(t);
        var g = Allocate(t.Shape);
        t.Grad = g;
        _gradHolders.Add(t);
        return g.Span;
    }

    /// <summary>Back-propagates d(loss)/d(loss) = 1 through every recorded op, newest first.</summary>
    public void Backward(Tensor loss)
    {
        if (loss.Length != 1) throw new ArgumentException($"Backward needs a scalar loss, got shape {Shapes.Format(loss.Shape)}.");
        Backward(loss, [1f]);
    }

    /// <summary>Back-propagates an upstream gradient <paramref name="upstream"/> (shaped like <paramref name="output"/>), i.e. the gradient of Σ output ⊙ upstream.</summary>
    public void Backward(Tensor output, ReadOnlySpan<float> upstream)
    {
        if (!output.RequiresGrad) throw new InvalidOperationException("The output does not depend on any tensor that requires a gradient.");
        if (upstream.Length != output.Length)
            throw new ArgumentException($"The upstream gradient has {upstream.Length} elements; the output {Shapes.Format(output.Shape)} has {output.Length}.");
        TensorPrimitives.Add(GradOf(output), upstream, GradOf(output));
        Profile?.Mark();
        for (int i = _nodes.Count - 1; i >= 0; i--)
            if (_nodes[i].Output.Grad is not null)
            {
                _nodes[i].Backward(this);
                Profile?.Backward(_nodes[i].Op);
            }
    }

    /// <summary>
    /// The first recorded op, in forward order, whose output holds a NaN or infinity, or null. Training calls it
    /// after a non-finite loss to name the layer at fault.
    /// </summary>
    internal Node? FirstNonFinite()
    {
        foreach (var node in _nodes)
            if (!TensorPrimitives.IsFiniteAll(node.Output.Span)) return node;
        return null;
    }

    /// <summary>Forgets the recorded ops and returns every tape-owned tensor to the pool.</summary>
    public void Reset()
    {
        _nodes.Clear();
        // Tensors outside the tape (inputs the caller made) may hold a pooled gradient too; drop those references.
        foreach (var t in _gradHolders) t.Grad = null;
        _gradHolders.Clear();
        foreach (var t in _owned) _pool.Return(t);
        _owned.Clear();
        foreach (var a in _ownedInts)
        {
            if (!_freeInts.TryGetValue(a.Length, out var stack)) _freeInts[a.Length] = stack = new Stack<int[]>();
            stack.Push(a);
        }
        _ownedInts.Clear();
        Generation++;
    }

    /// <summary>Undoes a <see cref="NoGrad"/> or <see cref="Named"/> when disposed.</summary>
    public readonly struct Scope : IDisposable
    {
        private readonly Tape _tape;
        private readonly bool _named;

        internal Scope(Tape tape, bool named)
        {
            _tape = tape;
            _named = named;
        }

        /// <summary>Leaves the scope: pops the name, or ends the no-gradient region.</summary>
        public void Dispose()
        {
            if (_named) _tape._scopes.Pop();
            else _tape._noGrad--;
        }
    }
}

/// <summary>A recorded op: its backward adds the gradient of <see cref="Output"/> into its inputs' gradients.</summary>
internal abstract class Node
{
    protected Node(Tensor output) => Output = output;

    /// <summary>The tensor the op produced; its gradient drives <see cref="Backward"/>.</summary>
    public Tensor Output { get; }

    /// <summary>The layer that recorded this op (see <see cref="Tape.Named"/>).</summary>
    public string Label { get; internal set; } = "";

    /// <summary>The op's name, for diagnostics.</summary>
    public abstract string Op { get; }

    internal abstract void Backward(Tape tape);
}
