namespace MoeSharp.Autograd;

/// <summary>Raised when a loss, gradient or output stops being finite; names the layer, op or expert that first produced it.</summary>
public sealed class NonFiniteException(string message) : Exception(message);
