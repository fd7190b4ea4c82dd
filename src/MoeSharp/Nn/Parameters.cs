using MoeSharp.Formats;
using MoeSharp.Tensors;

namespace MoeSharp.Nn;

/// <summary>How a parameter starts out.</summary>
public readonly record struct Init(InitKind Kind, float Scale = 0)
{
    /// <summary>Draws from N(0, <paramref name="std"/>²).</summary>
    public static Init Normal(float std) => new(InitKind.Normal, std);
    /// <summary>Fills with <paramref name="value"/>.</summary>
    public static Init Constant(float value) => new(InitKind.Constant, value);
    /// <summary>Fills with 0 (biases, shifts).</summary>
    public static Init Zeros => new(InitKind.Constant, 0);
    /// <summary>Fills with 1 (normalisation scales).</summary>
    public static Init Ones => new(InitKind.Constant, 1);
}

/// <summary>The distributions <see cref="Init"/> can describe.</summary>
public enum InitKind
{
    /// <summary>N(0, Scale²).</summary>
    Normal,

    /// <summary>Every element equals Scale.</summary>
    Constant,
}

/// <summary>
/// A named parameter. Its <see cref="Value"/> and gradient are views into the arena's two flat buffers, which
/// exist once <see cref="ParameterArena.Build"/> has run; or, for inference, it is bound to a <see cref="StoredWeight"/>
/// (<see cref="ParameterArena.Store"/>) and takes no space in the arena.
/// </summary>
public sealed class Parameter
{
    private Tensor? _value;

    internal Parameter(string name, int[] shape, Init init, bool trainable)
    {
        Name = name;
        Shape = shape;
        Init = init;
        _trainable = trainable;
    }

    private readonly bool _trainable;

    /// <summary>Full dotted name, e.g. <c>model.layers.0.self_attn.q_proj.weight</c>; unique in its arena.</summary>
    public string Name { get; }
    /// <summary>Dimensions, outermost first.</summary>
    public int[] Shape { get; }
    /// <summary>How <see cref="ParameterArena.Build"/> initialises it.</summary>
    public Init Init { get; }

    /// <summary>Start of this parameter in the arena's flat buffers, set by <see cref="ParameterArena.Build"/>; −1 when stored.</summary>
    public int Offset { get; internal set; } = -1;
    /// <summary>Element count: the product of <see cref="Shape"/>.</summary>
    public int Length => Shapes.Count(Shape);

    /// <summary>The stored weight this parameter computes with, or null when its values are fp32 in the arena.</summary>
    public StoredWeight? Stored { get; internal set; }

    /// <summary>The parameter tensor; its <see cref="Tensor.Grad"/> is the matching view of the gradient arena.</summary>
    /// <exception cref="InvalidOperationException">The parameter is stored (<see cref="Stored"/>), or its arena is not built yet.</exception>
    public Tensor Value => _value ?? throw (Stored is { } s
        ? new InvalidOperationException($"Parameter '{Name}' is stored as {s.Format} for inference; training and fp32 access need fp32 weights (load the model without in-place or quantized weights).")
        : new InvalidOperationException($"Parameter '{Name}' is used before its arena was built."));

    /// <summary>When false, the optimizer skips it and autograd gives it no gradient (frozen). A stored parameter is never trainable.</summary>
    public bool Trainable
    {
        get => Stored is null && Value.RequiresGrad;
        set => Value.RequiresGrad = value;
    }

    /// <summary>
    /// Whether <see cref="ParameterArena.ZeroGrad"/> may leave this gradient uncleared and only mark it stale, for a
    /// parameter whose one gradient writer overwrites it after <see cref="TakeStaleGrad"/> (the stacked expert
    /// weights: at many experts, clearing them costs as much as a pass over all the weights).
    /// </summary>
    internal bool ZeroLazily { get; set; }

    /// <summary>Set by <see cref="ParameterArena.ZeroGrad"/> on a lazily zeroed gradient: its view still holds old values.</summary>
    internal bool GradStale { get; set; }

    /// <summary>True once after a lazy ZeroGrad: the caller must then write every gradient element instead of adding.</summary>
    internal bool TakeStaleGrad()
    {
        bool stale = GradStale;
        GradStale = false;
        return stale;
    }

    internal void Bind(float[] values, float[] grads)
    {
        _value = new Tensor(values, Offset, Shape) { Name = Name, RequiresGrad = _trainable, Grad = new Tensor(grads, Offset, Shape) };
    }
}

/// <summary>
/// A weight kept in a storage format instead of fp32 arena floats, used in place for inference: one
/// <see cref="QuantizedMatrix"/> for a 2-D parameter [out, in], or one per expert for a stacked 3-D parameter
/// [E, out, in] (expert e's rows are matrix e). The matrices' memory belongs to whoever made them (a memory-mapped
/// file the model owns, or arrays quantized on load).
/// </summary>
public sealed class StoredWeight
{
    private readonly QuantizedMatrix[] _matrices;

    /// <summary>A 2-D weight [matrix.Rows, matrix.Cols].</summary>
    public StoredWeight(QuantizedMatrix matrix) : this([matrix]) { }

    /// <summary>A stacked weight [matrices.Count, Rows, Cols]; every matrix has the same shape.</summary>
    public StoredWeight(IReadOnlyList<QuantizedMatrix> matrices)
    {
        if (matrices.Count == 0) throw new ArgumentException("A stored weight needs at least one matrix.", nameof(matrices));
        _matrices = [.. matrices];
        foreach (var m in _matrices)
            if (m.Rows != _matrices[0].Rows || m.Cols != _matrices[0].Cols)
                throw new ArgumentException($"Stored matrices differ in shape: [{m.Rows}, {m.Cols}] beside [{_matrices[0].Rows}, {_matrices[0].Cols}].", nameof(matrices));
    }

    /// <summary>Matrices: 1 for a 2-D weight, E for stacked experts.</summary>
    public int Count => _matrices.Length;

    /// <summary>Matrix <paramref name="index"/> (expert <paramref name="index"/> of a stacked weight).</summary>
    public QuantizedMatrix this[int index] => _matrices[index];

    /// <summary>The storage format (of the first matrix; a file stores a tensor in one format).</summary>
    public WeightFormat Format => _matrices[0].Format;

    /// <summary>Stored bytes over every matrix.</summary>
    public long Bytes
    {
        get
        {
            long total = 0;
            foreach (var m in _matrices) total += m.Rows * m.RowBytes;
            return total;
        }
    }

    /// <summary>Whether this weight can stand for a parameter of <paramref name="shape"/> ([out, in], or [E, out, in]).</summary>
    public bool Fits(ReadOnlySpan<int> shape) => shape.Length switch
    {
        2 => Count == 1 && _matrices[0].Rows == shape[0] && _matrices[0].Cols == shape[1],
        3 => Count == shape[0] && _matrices[0].Rows == shape[1] && _matrices[0].Cols == shape[2],
        _ => false,
    };

    /// <summary>The shape as "[E × out, in] FORMAT", for messages.</summary>
    public override string ToString() => $"{(Count == 1 ? "" : Count + " × ")}[{_matrices[0].Rows}, {_matrices[0].Cols}] {Format}";
}

/// <summary>
/// All of a model's parameters in one flat buffer and all gradients in a second, with named views into them
/// (llm.c's layout). Modules register parameters while the model is built; <see cref="Build"/> then allocates
/// and initialises everything in registration order, so a seed fixes the initial weights.
/// </summary>
public sealed class ParameterArena
{
    private readonly List<Parameter> _parameters = [];
    private readonly Dictionary<string, Parameter> _byName = [];
    private int _length;
    private bool _built;

    /// <summary>Every parameter in registration order, which is also buffer order.</summary>
    public IReadOnlyList<Parameter> Parameters => _parameters;
    /// <summary>Whether <see cref="Build"/> has allocated the buffers (optimizers need that).</summary>
    public bool IsBuilt => _built;
    /// <summary>Total elements over the parameters held in the arena (every one but the stored): the length of <see cref="Values"/> and <see cref="Grads"/>, known once built.</summary>
    public int Length => _built ? _length : checked((int)ArenaElements());

    private long ArenaElements()
    {
        long total = 0;
        foreach (var p in _parameters) if (p.Stored is null) total += p.Length;
        return total;
    }

    /// <summary>Elements over every parameter, stored or not: the model's size.</summary>
    public long TotalElements
    {
        get
        {
            long total = 0;
            foreach (var p in _parameters) total += p.Length;
            return total;
        }
    }

    /// <summary>Bytes the model's weights take: 4 per arena element plus every stored weight's bytes.</summary>
    public long WeightBytes
    {
        get
        {
            long total = 4L * _length;
            foreach (var p in _parameters) total += p.Stored?.Bytes ?? 0;
            return total;
        }
    }

    /// <summary>[total] every parameter value, in registration order.</summary>
    public float[] Values { get; private set; } = [];

    private float[] _grads = [];
    private bool _stalePending; // a ZeroGrad left some gradient stale that Grads has not cleared yet

    /// <summary>[total] every gradient, aligned with <see cref="Values"/>; lazily zeroed ones still stale are cleared first.</summary>
    public float[] Grads
    {
        get
        {
            if (!_stalePending) return _grads;
            foreach (var p in _parameters)
                if (p.Stored is null && p.TakeStaleGrad()) Array.Clear(_grads, p.Offset, p.Length);
            _stalePending = false;
            return _grads;
        }
    }

    /// <param name="trainable">False for state that lives with the weights but is not learned by gradient (a routing bias).</param>
    public Parameter Add(string name, int[] shape, Init init, bool trainable = true)
    {
        if (_built) throw new InvalidOperationException($"Cannot add parameter '{name}': the arena is already built.");
        if (_byName.ContainsKey(name)) throw new ArgumentException($"A parameter named '{name}' already exists.", nameof(name));
        var p = new Parameter(name, (int[])shape.Clone(), init, trainable);
        _parameters.Add(p);
        _byName[name] = p;
        return p;
    }

    /// <summary>Looks up a parameter by its full name.</summary>
    public bool TryGet(string name, out Parameter parameter) => _byName.TryGetValue(name, out parameter!);

    /// <summary>The parameter with full name <paramref name="name"/>; an unknown name throws, naming it.</summary>
    public Parameter this[string name] => _byName.TryGetValue(name, out var p) ? p
        : throw new KeyNotFoundException($"No parameter named '{name}'.");

    /// <summary>
    /// Binds <paramref name="parameter"/> to <paramref name="weight"/> for inference, before <see cref="Build"/>: it then
    /// takes no arena space, has no gradient, and reading its <see cref="Parameter.Value"/> throws.
    /// </summary>
    public void Store(Parameter parameter, StoredWeight weight)
    {
        if (_built) throw new InvalidOperationException($"Cannot store parameter '{parameter.Name}': the arena is already built.");
        if (!_byName.TryGetValue(parameter.Name, out var own) || own != parameter)
            throw new ArgumentException($"Parameter '{parameter.Name}' belongs to another arena.", nameof(parameter));
        if (!weight.Fits(parameter.Shape))
            throw new ArgumentException($"Parameter '{parameter.Name}' has shape {Shapes.Format(parameter.Shape)}; the stored weight is {weight}.", nameof(weight));
        parameter.Stored = weight;
    }

    /// <summary>
    /// Allocates both buffers for every parameter not stored (<see cref="Store"/>) and, when <paramref name="initialize"/>,
    /// initialises them from <paramref name="seed"/>; a loader that fills every parameter passes false and skips the draws.
    /// </summary>
    public void Build(ulong seed, bool initialize = true)
    {
        if (_built) throw new InvalidOperationException("The parameter arena is already built.");
        long length = 0;
        foreach (var p in _parameters)
        {
            if (p.Stored is not null) continue;
            p.Offset = (int)length;
            length += p.Length;
            if (length > Array.MaxLength)
                throw new InvalidOperationException($"The fp32 parameters reach {length:N0} elements at '{p.Name}', more than one array holds ({Array.MaxLength:N0}); store the large weights (quantized or memory-mapped) instead.");
        }
        _length = (int)length;
        Values = new float[_length];
        _grads = new float[_length];
        _built = true;
        var rng = new Rng(seed);
        foreach (var p in _parameters)
        {
            if (p.Stored is not null) continue;
            p.Bind(Values, _grads);
            if (!initialize) continue;
            var span = p.Value.Span;
            switch (p.Init.Kind)
            {
                case InitKind.Normal: rng.FillNormal(span, 0, p.Init.Scale); break;
                default: span.Fill(p.Init.Scale); break;
            }
        }
    }

    /// <summary>
    /// Sets every gradient to 0, before the next backward pass accumulates into them; a gradient its writer
    /// overwrites (<see cref="Parameter.ZeroLazily"/>) is only marked stale, as PyTorch's <c>set_to_none</c>.
    /// </summary>
    public void ZeroGrad()
    {
        foreach (var p in _parameters)
        {
            if (p.Stored is not null) continue; // no gradient: inference only
            if (p.ZeroLazily) p.GradStale = _stalePending = true;
            else Array.Clear(_grads, p.Offset, p.Length);
        }
    }
}

/// <summary>
/// Where a model built for inference takes its large weights from: for each parameter the model offers (2-D
/// projections, the embedding, the LM head, stacked experts), a <see cref="StoredWeight"/> to compute with in place
/// of arena floats, or null to keep it fp32 in the arena. The model owns the source and disposes it with itself, so a
/// source releases what its weights live in (memory-mapped files) in <see cref="IDisposable.Dispose"/>.
/// </summary>
public interface IWeightSource : IDisposable
{
    /// <summary>The stored form of <paramref name="parameter"/> ([out, in] or [E, out, in]), or null to keep it in the arena.</summary>
    StoredWeight? Stored(Parameter parameter);
}
