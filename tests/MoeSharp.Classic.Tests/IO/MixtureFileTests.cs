using System.Text.Json.Nodes;
using MoeSharp.Classic.Data;
using MoeSharp.Classic.Experts;
using MoeSharp.Classic.IO;
using MoeSharp.Classic.Models;
using MoeSharp.Tensors;
using MoeSharp.Classic.Tests.Models;
using MoeSharp.Classic.Training;

namespace MoeSharp.Classic.Tests.IO;

public sealed class MixtureFileTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "moesharp-mixture-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_folder)) Directory.Delete(_folder, recursive: true);
    }

    private static TabularData Classes()
    {
        var rng = new Rng(2);
        var x = new float[80 * 3];
        rng.FillNormal(x, 0, 1);
        var labels = Enumerable.Range(0, 80).Select(r => (x[3 * r] > 0 ? 1 : 0) + (x[3 * r + 1] > 0.5f ? 1 : 0)).ToArray();
        return new TabularData(Tensor.FromArray(x, 80, 3), TabularTask.Classification, labels, null, 3);
    }

    [Fact]
    public void AMixedMixtureRoundTripsBitwise()
    {
        var data = Classes();
        IExpert[] experts =
        [
            new MlpExpert(3, 3, TabularTask.Classification, new MlpExpertOptions { Hidden = 4, Epochs = 3 }),
            new LinearExpert(3, 3, TabularTask.Classification),
            new TreeExpert(3, 3, TabularTask.Classification, new TreeExpertOptions { MaxDepth = 3 }),
        ];
        var model = new MixtureOfExperts(MixtureOptions.For(data, new GateOptions { Hidden = 5 }), experts);
        new MixtureTrainer(model, new MixtureTrainOptions { GateEpochs = 2, JointEpochs = 2 }).Fit(data);
        model.Freeze(1);
        model.TopK = 2;
        var schema = new TabularSchema { Features = ["a", "b", "c"], Target = "label", Task = TabularTask.Classification, ClassValues = [1, 2, 3], InputMean = [0, 1, 2], InputStd = [1, 2, 3] };
        MixtureFile.Save(_folder, model, schema);
        var loaded = MixtureFile.Load(_folder);
        var copy = loaded.Mixture!;
        Assert.Equal(2, copy.TopK);
        Assert.True(copy.IsFrozen(1) && !copy.IsFrozen(0));
        Assert.Equal(["mlp", "linear", "tree"], copy.Experts.Select(e => e.Kind));
        Numerics.BitwiseEqual(model.Predict(data.X.Span).Output, copy.Predict(data.X.Span).Output, "predictions");
        Assert.Equal(schema.Features, loaded.Schema!.Features);
        Assert.Equal(schema.ClassValues, loaded.Schema.ClassValues);
        Assert.Equal(schema.InputStd, loaded.Schema.InputStd);
    }

    [Fact]
    public void RegressionVariancesAndAHierarchyRoundTrip()
    {
        var rng = new Rng(1);
        var x = Enumerable.Range(0, 60).Select(_ => 2 * rng.NextFloat() - 1).ToArray();
        var data = new TabularData(Tensor.FromArray(x, 60, 1), TabularTask.Regression, null, x.Select(v => MathF.Abs(v)).ToArray());
        var groups = Enumerable.Range(0, 2).Select(_ => new MixtureOfExperts(MixtureOptions.For(data),
            [new LinearExpert(1, 1, TabularTask.Regression), new TreeExpert(1, 1, TabularTask.Regression, new TreeExpertOptions { MaxDepth = 2 })])).ToArray();
        var hme = new HierarchicalMixture(groups);
        var trainer = new HierarchicalTrainer(hme, new MixtureTrainOptions { EmIterations = 2, GateStepsPerMStep = 10 });
        trainer.Initialize(data);
        trainer.RunEm(data);
        MixtureFile.Save(_folder, hme);
        var loaded = MixtureFile.Load(_folder).Hierarchy!;
        Assert.Equal(groups[1].Variances, loaded.Groups[1].Variances);
        Numerics.BitwiseEqual(hme.Predict(x).Output, loaded.Predict(x).Output, "predictions");
    }

    [Fact]
    public void UserExpertsNeedExportToSaveAndALoaderToLoad()
    {
        var model = new MixtureOfExperts(new MixtureOptions { Task = TabularTask.Regression, Inputs = 1 },
            [new ScriptedExpert(1, 1, TabularTask.Regression)]);
        var ex = Assert.Throws<NotSupportedException>(() => MixtureFile.Save(_folder, model));
        Assert.Contains("Expert kind 'scripted' cannot be saved", ex.Message);

        var data = new TabularData(Tensor.FromArray([0f, 1f], 2, 1), TabularTask.Regression, null, [0f, 1f]);
        MixtureFile.Save(_folder, new MixtureOfExperts(MixtureOptions.For(data), [new LinearExpert(1, 1, TabularTask.Regression)]));
        string config = Path.Combine(_folder, MixtureFile.ConfigFileName);
        var json = JsonNode.Parse(File.ReadAllText(config))!;
        json["mixture"]!["experts"]![0]!["kind"] = "custom";
        File.WriteAllText(config, json.ToJsonString());
        Assert.Contains("Unknown expert kind 'custom'", Assert.Throws<FormatException>(() => MixtureFile.Load(_folder)).Message);
        Func<ExpertState, IExpert?> loader = s => s.Kind == "custom" ? new ScriptedExpert(1, 1, TabularTask.Regression, value: 3) : null;
        var restored = MixtureFile.Load(_folder, loader);
        Assert.Equal(3f, restored.Predict([0.5f]).Output[0]);

        json["mixture"]!.AsObject().Remove("variances");
        File.WriteAllText(config, json.ToJsonString());
        Assert.Contains("field 'variances' is missing", Assert.Throws<FormatException>(() => MixtureFile.Load(_folder, loader)).Message);
    }
}
