using MoeSharp.Classic.Data;

namespace MoeSharp.Classic.Models;

/// <summary>A model read back by <c>MixtureFile.Load</c>: one of the two mixture kinds, and the schema saved with it.</summary>
public sealed record SavedMixture(MixtureOfExperts? Mixture, HierarchicalMixture? Hierarchy, TabularSchema? Schema)
{
    /// <summary>Whether the saved model classifies or regresses.</summary>
    public TabularTask Task => Mixture?.Task ?? Hierarchy!.Task;

    /// <summary>Predicts with whichever mixture was saved.</summary>
    public MixturePrediction Predict(ReadOnlySpan<float> x, FaultPolicy? policy = null) =>
        Mixture is not null ? Mixture.Predict(x, policy) : Hierarchy!.Predict(x, policy);
}
