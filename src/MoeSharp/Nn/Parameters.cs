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
/// exist once <see cref="ParameterArena.Build"/> has run.
/// </summary>
public sealed class Parameter
{
    private Tensor? _value;

    internal Parameter(string name, int[] shape, Init init, int offset, bool trainable)
    {
        Name = name;
        Shape = shape;
        Init = init;
        Offset = offset;
        _trainable = trainable;
    }

    private readonly bool _trainable;

    /// <summary>Full dotted name, e.g. <c>model.layers.0.self_attn.q_proj.weight</c>; unique in its arena.</summary>
    public string Name { get; }
    /// <summary>Dimensions, outermost first.</summary>
    public int[] Shape { get; }
    /// <summary>How <see cref="ParameterArena.Build"/> initialises it.</summary>
    public Init Init { get; }

    /// <summary>Start of this parameter in the arena's flat buffers.</summary>
    public int Offset { get; }
    /// <summary>Element count: the product of <see cref="Shape"/>.</summary>
    public int Length => Shapes.Count(Shape);

    /// <summary>The parameter tensor; its <see cref="Tensor.Grad"/> is the matching view of the gradient arena.</summary>
    public Tensor Value => _value ?? throw new InvalidOperationException($"Parameter '{Name}' is used before its arena was built.");

    /// <summary>When false, the optimizer skips it and autograd gives it no gradient (frozen).</summary>
    public bool Trainable
    {
        get => Value.RequiresGrad;
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
/// All of a model's parameters in one flat buffer and all gradients in a second, with named views into them
/// (llm.c's layout). Modules register parameters while the model is built; <see cref="Build"/> then allocates
/// and initialises everything in registration order, so a seed fixes the initial weights.
/// </summary>
public sealed class ParameterArena
{
    private readonly List<Parameter> _parameters = [];
    private readonly Dictionary<string, Parameter> _byName = [];
    private int _length;

    /// <summary>Every parameter in registration order, which is also buffer order.</summary>
    public IReadOnlyList<Parameter> Parameters => _parameters;
    /// <summary>Whether <see cref="Build"/> has allocated the buffers (optimizers need that).</summary>
    public bool IsBuilt => Values.Length > 0 || (_length == 0 && _parameters.Count > 0);
    /// <summary>Total elements over all parameters: the length of <see cref="Values"/> and <see cref="Grads"/>.</summary>
    public int Length => _length;

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
                if (p.TakeStaleGrad()) Array.Clear(_grads, p.Offset, p.Length);
            _stalePending = false;
            return _grads;
        }
    }

    /// <param name="trainable">False for state that lives with the weights but is not learned by gradient (a routing bias).</param>
    public Parameter Add(string name, int[] shape, Init init, bool trainable = true)
    {
        if (Values.Length > 0) throw new InvalidOperationException($"Cannot add parameter '{name}': the arena is already built.");
        if (_byName.ContainsKey(name)) throw new ArgumentException($"A parameter named '{name}' already exists.", nameof(name));
        var p = new Parameter(name, (int[])shape.Clone(), init, _length, trainable);
        _length = checked(_length + p.Length);
        _parameters.Add(p);
        _byName[name] = p;
        return p;
    }

    /// <summary>Looks up a parameter by its full name.</summary>
    public bool TryGet(string name, out Parameter parameter) => _byName.TryGetValue(name, out parameter!);

    /// <summary>The parameter with full name <paramref name="name"/>; an unknown name throws, naming it.</summary>
    public Parameter this[string name] => _byName.TryGetValue(name, out var p) ? p
        : throw new KeyNotFoundException($"No parameter named '{name}'.");

    /// <summary>Allocates both buffers and initialises every parameter from <paramref name="seed"/>.</summary>
    public void Build(ulong seed)
    {
        if (Values.Length > 0) throw new InvalidOperationException("The parameter arena is already built.");
        Values = new float[_length];
        _grads = new float[_length];
        var rng = new Rng(seed);
        foreach (var p in _parameters)
        {
            p.Bind(Values, _grads);
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
            if (p.ZeroLazily) p.GradStale = _stalePending = true;
            else Array.Clear(_grads, p.Offset, p.Length);
    }
}
