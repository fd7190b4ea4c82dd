using MoeSharp.Autograd;
using MoeSharp.Layers;
using MoeSharp.Nn;
using MoeSharp.Routing;
using MoeSharp.Tensors;

namespace MoeSharp.Models;

/// <summary>Sizes of a <see cref="PatchMoeClassifier"/>, validated by <see cref="Validate"/>, which names the bad field.</summary>
public sealed record PatchMoeOptions
{
    /// <summary>Image height in pixels.</summary>
    public int Height { get; init; } = 8;
    /// <summary>Image width in pixels.</summary>
    public int Width { get; init; } = 8;

    /// <summary>Side of the square patches; it must divide <see cref="Height"/> and <see cref="Width"/>.</summary>
    public int PatchSize { get; init; } = 4;

    /// <summary>Token width D of the embedded patches.</summary>
    public int Dim { get; init; } = 32;
    /// <summary>Number of classes C: the logits are [N, C].</summary>
    public int Classes { get; init; } = 10;

    /// <summary>The routed FFN over patch tokens; its <see cref="RouterOptions.Dim"/> is set to <see cref="Dim"/>.</summary>
    public MoeOptions Moe { get; init; } = new() { Experts = 4, TopK = 1, ExpertHidden = 64, Router = RouterKind.SoftmaxTopK, LoadBalanceCoef = 0.01f, ZLossCoef = 0 };

    /// <summary>Seeds the initial weights.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Patches (tokens) per image, P.</summary>
    public int PatchesPerImage => Height / PatchSize * (Width / PatchSize);
    /// <summary>Pixels per patch, p·p.</summary>
    public int PatchPixels => PatchSize * PatchSize;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid field.</summary>
    public void Validate()
    {
        static void Positive(int value, string field)
        {
            if (value <= 0) throw new ArgumentException($"PatchMoeOptions.{field}: must be positive, got {value}.", field);
        }
        Positive(Height, nameof(Height));
        Positive(Width, nameof(Width));
        Positive(PatchSize, nameof(PatchSize));
        Positive(Dim, nameof(Dim));
        Positive(Classes, nameof(Classes));
        if (Height % PatchSize != 0 || Width % PatchSize != 0)
            throw new ArgumentException($"PatchMoeOptions.PatchSize: {PatchSize} must divide the {Height}×{Width} image.", nameof(PatchSize));
        (Moe with { Dim = Dim }).Validate();
    }
}

/// <summary>
/// Image classification with routed patches, V-MoE style (Riquelme et al. 2021) at the scale of 8×8 digits: the image
/// is cut into square patches, each patch is embedded (a linear map plus a learned position embedding) and becomes a
/// token, one pre-norm residual MoE FFN routes every token to its experts, and a linear classifier reads the normalised
/// tokens side by side. Compute per image grows with the experts a patch uses, not with how many there are.
/// </summary>
public sealed class PatchMoeClassifier
{
    /// <summary>Builds the classifier for <paramref name="options"/> (validated first) and draws its weights from <see cref="PatchMoeOptions.Seed"/>.</summary>
    public PatchMoeClassifier(PatchMoeOptions options)
    {
        options.Validate();
        Options = options;
        Arena = new ParameterArena();
        PatchEmbed = new Linear(Arena, "patch_embed", options.PatchPixels, options.Dim, bias: true, initStd: 1f / MathF.Sqrt(options.PatchPixels));
        Position = new Embedding(Arena, "position", options.PatchesPerImage, options.Dim);
        MoeNorm = new RmsNorm(Arena, "moe_norm", options.Dim);
        Moe = new MoeLayer(options.Moe with { Dim = options.Dim }, Arena, "moe");
        HeadNorm = new RmsNorm(Arena, "head_norm", options.Dim);
        int features = options.PatchesPerImage * options.Dim;
        Head = new Linear(Arena, "head", features, options.Classes, bias: true, initStd: 1f / MathF.Sqrt(features));
        Arena.Build(options.Seed);
    }

    /// <summary>The sizes this classifier was built with.</summary>
    public PatchMoeOptions Options { get; }
    /// <summary>Every weight in one flat buffer, gradients in a second.</summary>
    public ParameterArena Arena { get; }
    /// <summary>Patch embedding [p·p, D], with bias.</summary>
    public Linear PatchEmbed { get; }
    /// <summary>Learned position embedding [P, D], one row per patch position.</summary>
    public Embedding Position { get; }
    /// <summary>The RMSNorm before the MoE FFN.</summary>
    public RmsNorm MoeNorm { get; }
    /// <summary>The MoE FFN that routes every patch token.</summary>
    public MoeLayer Moe { get; }
    /// <summary>The RMSNorm before the classifier.</summary>
    public RmsNorm HeadNorm { get; }
    /// <summary>The classifier [P·D, C], with bias, over the tokens side by side.</summary>
    public Linear Head { get; }

    /// <summary>
    /// Cuts images [N, H·W] (row-major pixels) into patches [N·P, p·p]: image-major, patches in row-major order over
    /// the grid, pixels row-major within a patch.
    /// </summary>
    public static float[] Patchify(ReadOnlySpan<float> images, int n, int height, int width, int patch)
    {
        if (images.Length != n * height * width)
            throw new ArgumentException($"Expected {n} images of {height}×{width} = {n * height * width} pixels, got {images.Length}.", nameof(images));
        int across = width / patch, perImage = height / patch * across, pixels = patch * patch;
        var patches = new float[n * perImage * pixels]; // [N·P, p·p]
        for (int i = 0; i < n; i++)
            for (int q = 0; q < perImage; q++)
            {
                int top = q / across * patch, left = q % across * patch;
                for (int r = 0; r < patch; r++)
                    images.Slice(i * height * width + (top + r) * width + left, patch)
                        .CopyTo(patches.AsSpan(((i * perImage + q) * patch + r) * patch, patch));
            }
        return patches;
    }

    /// <summary>Images [N, H·W] → class logits [N, C], and the MoE layer's result (aux losses, routing).</summary>
    public (Tensor Logits, MoeResult Moe) Forward(Tape tape, Tensor images, bool training = false)
    {
        int n = images.Dim(0), p = Options.PatchesPerImage;
        if (images.Rank != 2 || images.Dim(1) != Options.Height * Options.Width)
            throw new ArgumentException($"PatchMoeClassifier: images have shape {Shapes.Format(images.Shape)}; expected [N, {Options.Height * Options.Width}].", nameof(images));
        var patches = Tensor.FromArray(Patchify(images.Span, n, Options.Height, Options.Width, Options.PatchSize), n * p, Options.PatchPixels);
        var positions = new int[n * p];
        for (int t = 0; t < positions.Length; t++) positions[t] = t % p;
        var x = tape.Add(PatchEmbed.Forward(tape, patches), Position.Forward(tape, positions)); // [N·P, D]
        var moe = Moe.Forward(tape, MoeNorm.Forward(tape, x), new RoutingContext { Training = training });
        x = HeadNorm.Forward(tape, tape.Add(x, moe.Output)); // [N·P, D]
        // Without attention nothing else mixes the patches, so the head reads every token in place ([N, P·D]) and
        // keeps where each patch sits; a mean over tokens would leave only what the MoE's nonlinearity encodes of it.
        return (Head.Forward(tape, tape.Reshape(x, n, p * Options.Dim)), moe);
    }

    /// <summary>Predicted class of each image [N, H·W], in chunks so that the activations stay small.</summary>
    public int[] Predict(Tensor images)
    {
        var predictions = new int[images.Dim(0)];
        var tape = new Tape();
        int c = Options.Classes;
        for (int start = 0; start < predictions.Length; start += Chunk)
        {
            int rows = Math.Min(Chunk, predictions.Length - start);
            using (tape.NoGrad())
            {
                var logits = Forward(tape, images.Rows(start, rows)).Logits;
                for (int i = 0; i < rows; i++)
                {
                    var row = logits.Span.Slice(i * c, c);
                    predictions[start + i] = row.IndexOf(TensorPrimitives.Max(row));
                }
            }
            tape.Reset();
        }
        return predictions;
    }

    private const int Chunk = 256;

    /// <summary>
    /// How many tokens at each patch position went to each expert [P, E] (counting every chosen pair), over images
    /// [N, H·W]: the position-by-expert table that shows whether experts specialise by image region.
    /// </summary>
    public long[,] PositionExpertCounts(Tensor images)
    {
        var tape = new Tape();
        int p = Options.PatchesPerImage;
        var counts = new long[p, Options.Moe.Experts];
        for (int start = 0; start < images.Dim(0); start += Chunk)
        {
            using (tape.NoGrad())
            {
                var routing = Forward(tape, images.Rows(start, Math.Min(Chunk, images.Dim(0) - start))).Moe.Routing
                    ?? throw new InvalidOperationException("The MoE layer returned no routing.");
                for (int t = 0; t + 1 < routing.TokenOffsets.Length; t++)
                    for (int pair = routing.TokenOffsets[t]; pair < routing.TokenOffsets[t + 1]; pair++)
                        counts[t % p, routing.PairExpert[pair]]++;
            }
            tape.Reset();
        }
        return counts;
    }
}
