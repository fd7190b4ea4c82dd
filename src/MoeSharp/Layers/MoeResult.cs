using MoeSharp.Routing;
using MoeSharp.Tensors;

namespace MoeSharp.Layers;

/// <summary>
/// What a <see cref="MoeLayer"/> returns: the output, every auxiliary loss as a separate named scalar, their
/// coefficient-weighted sum for the caller to add to its loss, and the routing statistics. Nothing is kept in the
/// layer or in globals. <see cref="Routing"/> is the router's decision (null for Soft MoE), for inspection.
/// </summary>
public sealed record MoeResult(Tensor Output, IReadOnlyDictionary<string, Tensor> AuxLosses, Tensor? AuxLoss, RoutingStats Stats, RouterOutput? Routing);
