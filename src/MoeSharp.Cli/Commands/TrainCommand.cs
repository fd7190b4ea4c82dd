using System.CommandLine;
using System.Diagnostics;
using MoeSharp.Models;
using MoeSharp.Data;
using MoeSharp.Kernels;
using MoeSharp.Nn;
using MoeSharp.Training;

namespace MoeSharp.Cli.Commands;

/// <summary><c>moe train</c>: trains a character-level language model on a text file.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var data = new Option<FileInfo>("--data") { Description = "UTF-8 text file to train on (char-level); the last 10% is validation.", Required = true };
        var steps = new Option<int>("--steps") { Description = "Optimisation steps.", DefaultValueFactory = _ => 2000 };
        var batch = new Option<int>("--batch") { Description = "Sequences per step.", DefaultValueFactory = _ => 12 };
        var context = new Option<int>("--context") { Description = "Tokens per sequence.", DefaultValueFactory = _ => 64 };
        var layers = new Option<int>("--layers") { DefaultValueFactory = _ => 4 };
        var dModel = new Option<int>("--d-model") { DefaultValueFactory = _ => 128 };
        var heads = new Option<int>("--heads") { DefaultValueFactory = _ => 4 };
        var dFF = new Option<int>("--d-ff") { Description = "Hidden width of the SwiGLU MLP.", DefaultValueFactory = _ => 512 };
        var lr = new Option<float>("--lr") { DefaultValueFactory = _ => 1e-3f };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 1337UL };
        var threads = new Option<int>("--threads") { Description = "Worker threads (default: all cores).", DefaultValueFactory = _ => Environment.ProcessorCount };
        var evalEvery = new Option<int>("--eval-every") { DefaultValueFactory = _ => 250 };
        var evalBatches = new Option<int>("--eval-batches") { DefaultValueFactory = _ => 50 };
        var command = new Command("train", "Train a language model.")
        {
            data, steps, batch, context, layers, dModel, heads, dFF, lr, seed, threads, evalEvery, evalBatches,
        };
        command.SetAction(p =>
        {
            Workers.Threads = p.GetValue(threads);
            var file = p.GetValue(data)!;
            if (!file.Exists) throw new FileNotFoundException($"Data file '{file.FullName}' does not exist.");
            string text = File.ReadAllText(file.FullName);
            if (text.Length == 0) throw new InvalidDataException($"Data file '{file.FullName}' is empty.");
            var tokenizer = CharTokenizer.FromText(text);
            var dataset = new TextDataset(tokenizer.Encode(text));
            var config = new ModelConfig
            {
                Vocab = tokenizer.VocabSize, DModel = p.GetValue(dModel), Layers = p.GetValue(layers), Heads = p.GetValue(heads),
                DFF = p.GetValue(dFF), Context = p.GetValue(context),
            };
            var options = new LmTrainOptions { Steps = p.GetValue(steps), Batch = p.GetValue(batch), LearningRate = p.GetValue(lr), Seed = p.GetValue(seed) };
            var model = new MoeTransformer(config, options.Seed);
            var trainer = new LmTrainer(model, dataset, options);
            Console.WriteLine($"model: {model.Arena.Length:N0} parameters, vocab {config.Vocab}, {config.Layers} layers, d_model {config.DModel}, threads {Workers.Threads}");
            var clock = Stopwatch.StartNew();
            double lossSum = 0;
            int lossCount = 0, every = Math.Max(1, p.GetValue(evalEvery));
            for (int s = 0; s < options.Steps; s++)
            {
                var r = trainer.TrainStep();
                lossSum += r.Loss;
                lossCount++;
                bool last = s == options.Steps - 1;
                if ((s + 1) % every == 0 || last)
                {
                    float val = trainer.Evaluate(p.GetValue(evalBatches));
                    double tokPerSec = (double)trainer.Step * options.Batch * config.Context / clock.Elapsed.TotalSeconds;
                    Console.WriteLine($"step {trainer.Step}/{options.Steps} train {lossSum / lossCount:F4} val {val:F4} lr {r.LearningRate:E2} {tokPerSec:F0} tok/s {clock.Elapsed.TotalSeconds:F0}s");
                    lossSum = 0;
                    lossCount = 0;
                }
            }
            return 0;
        });
        return command;
    }
}
